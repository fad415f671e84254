"""`backend: {kind: ray}`: the method's requests answered on Ray Data, in waves, through the text-backend interface.

The method's steps (self-instruct, suitability, answers, each Extender round, the baselines' steps) stay the
same code; they send their requests through `RayRoles.role(name)` as they would to any backend. Requests are
gathered while they arrive: once none has come for `linger_s` (every item in flight is waiting on the model)
or `wave_size` are waiting, the wave goes to Ray as one `ray_stage.run_step`, whose shards land as Parquet
files in the work directory. With `max_in_flight` at least a step's rows, a wave is that whole step.

Resume is twofold: every answer the method used is in its request ledger (a rerun sends it no more), and
every finished shard of a wave cut short is on disk (the rerun's wave finds its answers there).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.ray_stage import RayStageConfig, engine_settings, request_digest, run_step
from infra.backend import Completion, Unsupported
from infra.sampling import SamplingConfig


@dataclass
class WaveConfig:
    """When a gathered wave of requests goes to Ray."""

    linger_s: float = field(default=0.2, metadata={"help": "Seconds without a new request before a wave goes."})
    wave_size: int = field(default=4096, metadata={"help": "Most requests in one wave."})


class RayRoles:
    """One wave gatherer for every role of a step; `role(name)` is that role's text backend."""

    def __init__(self, base: str, adapters: dict[str, Path | None], out_dir: Path, ray: RayStageConfig,
                 engine: dict, waves: WaveConfig | None = None) -> None:
        from transformers import AutoTokenizer

        named = {role: path for role, path in adapters.items() if path is not None}
        self.adapter_of = {role: (role if path is not None else None) for role, path in adapters.items()}
        self.engine = {**engine, "model": str(base), "adapters": {role: str(path) for role, path in named.items()}}
        self.out_dir = Path(out_dir)
        self.ray = ray
        self.waves = waves or WaveConfig()
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.waiting: dict[str, tuple[dict, list[asyncio.Future]]] = {}
        self.flusher: asyncio.Task | None = None

    def role(self, name: str) -> RayRoleBackend:
        return RayRoleBackend(self, self.adapter_of[name])

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def answer(self, request: dict) -> dict:
        """`request`'s answer, from the wave it joins."""
        digest = request_digest(request)
        future = asyncio.get_running_loop().create_future()
        if digest in self.waiting:  # the same request twice in one wave: sent once
            self.waiting[digest][1].append(future)
        else:
            self.waiting[digest] = ({**request, "key": digest}, [future])
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._send_waves())
        return await future

    async def _send_waves(self) -> None:
        while self.waiting:
            seen = -1
            while len(self.waiting) != seen and len(self.waiting) < self.waves.wave_size:
                seen = len(self.waiting)
                await asyncio.sleep(self.waves.linger_s)
            wave = dict(list(self.waiting.items())[: self.waves.wave_size])
            for digest in wave:
                del self.waiting[digest]
            requests = [request for request, _ in wave.values()]
            try:
                answers = await asyncio.to_thread(run_step, requests, self.engine, self.out_dir, self.ray)
            except Exception as error:  # noqa: BLE001 - every caller in the wave hears of it (the method: no reply)
                for _, futures in wave.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                continue
            for answer in answers:
                for future in wave[answer["key"]][1]:
                    if not future.done():
                        future.set_result(answer)


class RayRoleBackend:
    """One role (the base, or the adapter it names) as a text backend over the shared waves."""

    features = frozenset({"json_schema"})

    def __init__(self, roles: RayRoles, adapter: str | None) -> None:
        self.roles = roles
        self.adapter = adapter

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return self.roles.apply_chat_template(messages)

    async def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Completion:
        return await self._request({"messages": messages}, sampling)

    async def complete(self, prompt: str, sampling: SamplingConfig) -> Completion:
        return await self._request({"prompt": prompt}, sampling)

    async def _request(self, body: dict, sampling: SamplingConfig) -> Completion:
        if sampling.top_logprobs is not None:
            raise Unsupported("top_logprobs: backend kind ray returns no logprobs")
        answer = await self.roles.answer({**body, "sampling": asdict(sampling), "model": self.adapter})
        return Completion(text=answer["text"], finish_reason=answer["finish_reason"],
                          completion_tokens=answer["completion_tokens"])


def ray_roles(base: str, adapters: dict[str, Path | None], out_dir: Path, ray: RayStageConfig, max_batch_size: int,
              torch_threads: int | None) -> RayRoles:
    """The roles' text backends for one block of work, with the engine settings every actor loads."""
    from infra.inprocess import InProcessConfig  # torch: only when work starts

    engine = engine_settings(InProcessConfig(model=Path(base), max_batch_size=max_batch_size,
                                             torch_threads=torch_threads or max(1, int(ray.cpus_per_actor))))
    return RayRoles(base, adapters, out_dir, ray, engine)
