"""`backend: {kind: ray}`: the method's requests answered on Ray Data, in waves, through the text-backend interface.

The method's steps (self-instruct, suitability, answers, each Extender round, the baselines' steps) stay the
same code; they send their requests through `RayRoles.role(name)` as they would to any backend. Requests are
gathered while they arrive: once none has come for `ray.linger_s` (every item in flight is waiting on the
model) or `ray.wave_size` are waiting, the wave goes to Ray as one `ray_stage.run_step`, whose shards land as
Parquet files in the work directory. With `max_in_flight` at least a step's rows, a wave is that whole step.

Resume is twofold: every answer the method used is in its request ledger (a rerun sends it no more), and
every finished shard of a wave cut short is on disk (the rerun's wave finds its answers there).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import asdict
from pathlib import Path

from harness.errors import UserError, first_line
from harness.synthesis.ray_stage import (
    RayStageConfig,
    ShardStore,
    cancel_ray_work,
    engine_settings,
    request_digest,
    run_step,
    start_ray,
)
from infra.backend import Completion, Unsupported
from infra.sampling import SamplingConfig

CANCEL_WAIT_S = 10.0
"""Longest wait, once a wave is cancelled, for its thread to return (Ray Data's executor stops within seconds)."""


class RayRoles:
    """One wave gatherer for every role of a step; `role(name)` is that role's text backend."""

    def __init__(self, base: str, adapters: dict[str, Path | None], out_dir: Path, ray: RayStageConfig,
                 engine: dict) -> None:
        """`engine`: what every actor loads (`ray_stage.engine_settings`, with these adapters by role)."""
        from transformers import AutoTokenizer

        self.adapter_of = {role: (role if path is not None else None) for role, path in adapters.items()}
        self.engine = engine
        self.out_dir = Path(out_dir)
        self.ray = ray
        self.store = ShardStore(self.out_dir)
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
            while len(self.waiting) != seen and len(self.waiting) < self.ray.wave_size:
                seen = len(self.waiting)
                await asyncio.sleep(self.ray.linger_s)
            wave = dict(list(self.waiting.items())[: self.ray.wave_size])
            for digest in wave:
                del self.waiting[digest]
            requests = [request for request, _ in wave.values()]
            try:
                answers = await self._run_wave(requests)
            except Exception as error:  # noqa: BLE001 - every caller in the wave hears of it (the method: no reply)
                for _, futures in wave.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                continue
            for answer in answers:  # a failed request fails its callers only (the method: no reply)
                for future in wave[answer["key"]][1]:
                    if not future.done() and "error" in answer:
                        future.set_exception(RuntimeError(answer["error"]))
                    elif not future.done():
                        future.set_result(answer)

    async def _run_wave(self, requests: list[dict]) -> list[dict]:
        """The wave's answers, from a thread of its own: `asyncio.run` waits for an `asyncio.to_thread` call to
        finish, so Ctrl-C would wait for the whole wave. Cancelled (Ctrl-C, or the run failing around it), the wave
        cancels its Ray work and waits only for the thread to see that, before Ray is shut down at exit."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def settle(outcome, value) -> None:
            if not done.done():
                outcome(value)

        def wave() -> None:
            try:
                result = (done.set_result, run_step(requests, self.engine, self.out_dir, self.ray, self.store))
            except Exception as error:  # noqa: BLE001 - handed to the wave's callers, as any failure of the wave
                result = (done.set_exception, error)
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits for this wave any more
                loop.call_soon_threadsafe(settle, *result)

        thread = threading.Thread(target=wave, name="ray-wave", daemon=True)
        thread.start()
        try:
            return await done
        except asyncio.CancelledError:
            deadline = time.monotonic() + CANCEL_WAIT_S
            while thread.is_alive() and time.monotonic() < deadline:  # again for a dataset started meanwhile
                cancel_ray_work()
                thread.join(timeout=0.5)
            raise


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
    """The roles' text backends for one block of work, with the engine settings every actor loads. Ray is joined
    here, before any request: an unreachable cluster is one error line, not a step whose every request failed."""
    from infra.inprocess import InProcessConfig  # torch: only when work starts

    try:
        start_ray(ray)
    except Exception as error:  # ray.init raises ConnectionError, RuntimeError, ValueError...
        where = f"the Ray cluster at {ray.address!r}" if ray.address else "a local Ray"
        raise UserError(f"backend.ray: could not start or join {where}: {first_line(error)}") from error
    named = {role: path for role, path in adapters.items() if path is not None}
    engine = engine_settings(InProcessConfig(model=Path(base), max_batch_size=max_batch_size,
                                             torch_threads=torch_threads or max(1, int(ray.cpus_per_actor))), named)
    return RayRoles(base, adapters, out_dir, ray, engine)
