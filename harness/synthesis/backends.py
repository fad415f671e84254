"""Where the roles' text comes from during synthesis: in process, or servers started for the block.

On CPU an in-process batched model, because it honours each request's sampling, repetition
penalty and stop strings, which `transformers serve --continuous-batching` does not; on GPU a
vLLM server with both adapters by name; or one `transformers serve` per role serving merged
checkpoints; or Ray Data (`harness/synthesis/ray_backend.py`): actors with the in-process engine on CPUs,
Ray Data LLM's vLLM processor on GPUs, both roles' adapters by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.serving.client import EndpointClient
from harness.serving.models import merge_once
from harness.serving.serve import ServerConfig, serve
from harness.synthesis.ray_stage import RayStageConfig
from infra.backend import TextBackend
from infra.compute import compute_threads

ROLES = ("generator", "extender")


@dataclass
class SynthesisBackendConfig:
    """Where the roles' text comes from during synthesis.

    Fields:
        kind: `inprocess` (CPU default: continuous batching in this process), `endpoint`
            (a server per role: transformers serve with merged checkpoints, or one vLLM server
            with LoRA adapters by name) or `ray` (Ray Data: waves of requests as Parquet shards).
        server: how to start the servers for `endpoint`.
        ray: where and how `ray` runs (engine, cluster address, actors or replicas, shard size).
        max_batch_size: `inprocess` and `ray`'s inprocess actors: requests decoded together.
        torch_threads: `inprocess`: torch threads; None takes the cores idle at start (`ray`: per actor).
    """

    kind: Literal["inprocess", "endpoint", "ray"] = field(default="inprocess", metadata={
        "help": "inprocess, endpoint or ray."})
    server: ServerConfig = field(default_factory=ServerConfig, metadata={"help": "Servers for `endpoint`."})
    ray: RayStageConfig = field(default_factory=RayStageConfig, metadata={"help": "Ray Data for `ray`."})
    max_batch_size: int = field(default=16, metadata={"help": "inprocess: most requests decoded together."})
    torch_threads: int | None = field(default=None, metadata={"help": "inprocess: torch threads; None: idle cores."})

    def __post_init__(self) -> None:
        """Refuse at load what only synthesis would trip on; an empty Ray address (an unset variable, say) names no
        cluster, so whether it joins one or starts a local Ray would be Ray's guess."""
        if isinstance(self.max_batch_size, bool) or self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size!r}")
        if self.ray.address is not None and not self.ray.address.strip():
            raise ValueError("ray.address must name a Ray cluster (auto, ray://host:10001) or be left out for a "
                             "local Ray, got an empty string")


def backend_settings(backend: SynthesisBackendConfig) -> dict:
    """The backend as a stage fingerprint holds it: the `ray` section only when it is used, so adding it left
    the fingerprints of in-process and endpoint runs as they were."""
    settings = dataclasses.asdict(backend)
    if backend.kind != "ray":
        del settings["ray"]
    return settings


@contextlib.contextmanager
def role_backends(base: str, adapters: dict, backend: SynthesisBackendConfig, it_dir: Path, max_in_flight: int
                  ) -> Iterator[tuple[TextBackend, TextBackend]]:
    """The Generator and Extender of this iteration, as text backends; the same one when equal.

    Endpoint clients let `max_in_flight` requests through: the method's limiter is the one cap.
    """
    with contextlib.ExitStack() as stack:
        if backend.kind == "inprocess":
            from infra.inprocess import (  # torch: only when work starts
                InProcessBackend,
                InProcessConfig,
            )

            made: dict = {}
            for role in ROLES:
                key = adapters[role]
                if key not in made:
                    made[key] = stack.enter_context(InProcessBackend(InProcessConfig(
                        model=Path(base), adapter=key, max_batch_size=backend.max_batch_size,
                        torch_threads=backend.torch_threads or compute_threads(1))))
            yield made[adapters["generator"]], made[adapters["extender"]]
        elif backend.kind == "ray":
            from harness.synthesis.ray_backend import ray_roles

            roles = ray_roles(base, adapters, it_dir / "ray_shards", backend.ray, backend.max_batch_size,
                              backend.torch_threads)
            yield roles.role("generator"), roles.role("extender")
        elif backend.server.kind == "vllm":
            names = {role: str(adapters[role]) for role in ROLES if adapters[role]}
            server = dataclasses.replace(backend.server, lora_adapters={role: path for role, path in names.items()})
            endpoint = stack.enter_context(serve(base, server, log_path=it_dir / "server.log"))
            clients = [EndpointClient(dataclasses.replace(endpoint, model=role if adapters[role] else base),
                                      max_concurrency=max_in_flight) for role in ROLES]
            yield clients[0], clients[1]
        else:
            served: dict = {}
            for role in ROLES:
                adapter = adapters[role]
                if adapter not in served:
                    path = base if adapter is None else str(merge_once(base, adapter, it_dir / f"{role}_input_merged"))
                    server = dataclasses.replace(backend.server, torch_threads=backend.server.torch_threads
                                                 or compute_threads(1 if adapters["generator"] == adapters["extender"] else 2))
                    endpoint = stack.enter_context(serve(path, server, log_path=it_dir / f"{role}_server.log"))
                    served[adapter] = EndpointClient(endpoint, max_concurrency=max_in_flight)
            yield served[adapters["generator"]], served[adapters["extender"]]
