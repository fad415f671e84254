"""A TextBackend that runs the model in this process with continuous batching.

Why not `transformers serve --continuous-batching` on a CPU: it fixes the sampling of every request
from the first one it receives, drops `repetition_penalty` and ignores stop strings. Why not batched
`generate` calls (this module's first design): a request arriving during a call waits for the whole
call, requests with different sampling cannot share one, and a batch's tail decodes one or two rows
at a time; measured in `benchmarks/bench_synthesis.py`, that left the pipeline at about a third of
the batched ceiling.

So one worker thread owns a decode loop. Every step it admits waiting requests into free rows (one
left-padded prefill, then their key/value cache is left-padded to the running cache's length and
stacked under it), runs one forward pass for all rows, and picks each row's next token with that
row's own sampling (temperature, top-k, top-p, repetition penalty, or greedy). A row leaves as
soon as it hits EOS, a stop string, max_tokens or the end of its JSON schema; its caller's future
resolves at once. Positions are passed per row, so padding never shifts a row's rotary positions.
This needs a model whose forward takes `position_ids` and a `DynamicCache` (Llama, Qwen, Mistral and SmolLM2 do).

A request with `json_schema` gets its own llguidance matcher (`infra.structured`): each step its
row's logits are masked to the tokens the schema allows, then the chosen token is fed back to
the matcher. With `top_logprobs`, each generated token comes back with its log-probability and the
n best alternatives', read from the distribution the token was drawn from: logits after the
repetition penalty and the schema mask, then for sampled rows after temperature, top-k and top-p
(tokens those cut have no probability and are never listed); greedy rows use temperature 1.

Callers stay plain async code: `chat`/`complete` queue a request and await a future. `torch_threads`
sets torch's process-wide thread count: on a shared 2-core machine one thread is ~10x faster than
two that fight other processes for the cores.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from infra.backend import Completion, TokenLogprob, truncate_at_stop
from infra.compute import (
    PACKED_HEAD_MAX_ROWS,
    check_precision,
    prepacked_output_layer,
    torch_threads,
    use_bf16,
)
from infra.sampling import SamplingConfig
from infra.structured import SchemaGuide


@dataclass
class InProcessConfig:
    """How to load and batch an in-process model.

    Fields:
        model: local checkpoint folder.
        adapter: optional LoRA adapter folder, merged into the weights at load.
        max_batch_size: most requests decoded together.
        batch_wait_s: how long an idle worker waits for companions of a first request.
        torch_threads: CPU threads for torch.
        precision: weights' dtype.
    """

    model: Path = field(metadata={"help": "Local checkpoint folder (config, weights, tokenizer)."})
    adapter: Path | None = field(default=None, metadata={"help": "LoRA adapter folder merged into the model at load."})
    max_batch_size: int = field(default=16, metadata={"help": "Most requests decoded together."})
    batch_wait_s: float = field(
        default=0.01, metadata={"help": "Seconds an idle worker waits for more requests before its first prefill."}
    )
    torch_threads: int | None = field(
        default=None, metadata={"help": "CPU threads for torch; None takes the cores other processes leave idle."}
    )
    precision: str = field(
        default="auto", metadata={"help": "'fp32', 'bf16', or 'auto': bf16 where the GPU or CPU computes it natively (AVX512-BF16 or AMX), else fp32."}
    )

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        check_precision(self.precision)


@dataclass
class _Request:
    prompt_ids: list[int]
    sampling: SamplingConfig
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    matcher: object | None = None  # llguidance.LLMatcher for a request with json_schema


@dataclass
class _Row:
    """A request being decoded and the tokens it produced so far."""

    request: _Request
    generator: object | None  # torch.Generator for a seeded request
    tokens: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # filled when the request asks for top_logprobs
    schema_done: bool = False  # the JSON schema is complete and allows nothing more

    @property
    def matcher(self):
        return self.request.matcher


_SHUTDOWN = object()


@dataclass
class DecodeStats:
    """What the decode loop did, for tests and benchmarks."""

    prefill_sizes: list[int] = field(default_factory=list)
    """Requests admitted by each prefill, in order."""
    prefill_seconds: float = 0.0
    prefill_tokens: int = 0
    """Prompt tokens run through the model (a prompt shared by several arrivals counts once)."""
    decode_steps: int = 0
    rows_decoded: int = 0
    """Sum over decode steps of the rows in the batch: rows_decoded / decode_steps is the mean occupancy."""
    decode_seconds: float = 0.0


class SpareRoomLayer(DynamicLayer):
    """A DynamicLayer that appends into spare room instead of concatenating.

    transformers' DynamicLayer copies the whole cache to append one position; at 16 rows of
    ~1,000-token Extender prompts that copy costs about as much as the forward pass itself.
    """

    spare = 256  # positions allocated ahead; each reallocation copies the cache once

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.room = None
        length = self.get_seq_length()
        needed = length + key_states.shape[-2]
        in_room = (self.room is not None and length > 0 and self.keys.data_ptr() == self.room[0].data_ptr()
                   and self.keys.shape[0] == key_states.shape[0] and self.room[0].shape[-2] >= needed)
        if not in_room:  # first use, the rows were regrouped from outside, or the room is full
            shape = (*key_states.shape[:2], needed + self.spare, key_states.shape[-1])
            self.room = tuple(torch.empty(shape, dtype=key_states.dtype, device=key_states.device) for _ in "kv")
            if length:
                self.room[0][:, :, :length] = self.keys
                self.room[1][:, :, :length] = self.values
        self.room[0][:, :, length:needed] = key_states
        self.room[1][:, :, length:needed] = value_states
        self.keys, self.values = self.room[0][:, :, :needed], self.room[1][:, :, :needed]
        return self.keys, self.values


class SpareRoomCache(DynamicCache):
    """A DynamicCache made of SpareRoomLayers."""

    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=SpareRoomLayer)


def warp_top_k_top_p(scores, temperature, top_k: list[int], top_p):
    """Per-row temperature, top-k and top-p over each row's k best tokens: (values, token ids).

    `scores` is [rows, vocab]; `temperature` and `top_p` are [rows] tensors, `top_k` one int per row.
    Keeps the same tokens as transformers' Temperature -> TopK -> TopP warpers (up to ties at the k-th
    score), but sorts only max(top_k) candidates instead of the whole vocabulary: with SmolLM2's
    49k-token vocabulary and 16 rows that is about 3 ms instead of about 50 ms per step on one core.
    Dropped candidates get -inf.
    """
    widest = min(max(top_k), scores.size(-1))
    values, indices = scores.topk(widest, dim=-1)  # sorted, best first
    values = values / temperature.unsqueeze(-1)
    rank = torch.arange(widest, device=scores.device).unsqueeze(0)
    values = values.masked_fill(rank >= torch.tensor(top_k, device=scores.device).unsqueeze(-1), -float("inf"))
    probs = values.softmax(dim=-1)
    drop = (probs.cumsum(dim=-1) - probs) >= top_p.unsqueeze(-1)
    drop[..., 0] = False
    return values.masked_fill(drop, -float("inf")), indices


def penalize_repeats(scores, seen, penalty):
    """transformers' repetition penalty per row: seen tokens' positive logits divided, negative multiplied."""
    penalty = penalty.unsqueeze(-1)
    penalized = torch.where(scores > 0, scores / penalty, scores * penalty)
    return torch.where(seen, penalized, scores)


class InProcessBackend:
    """Loads a model once and serves `chat`/`complete` from any number of concurrent async callers.

    Use as a context manager (`with InProcessBackend(config) as backend:`) so the worker thread
    always stops; requests still waiting or decoding at close fail with a RuntimeError.
    """

    features = frozenset({"json_schema", "top_logprobs"})

    def __init__(self, config: InProcessConfig) -> None:
        if not config.model.is_dir():
            raise FileNotFoundError(f"model path {config.model} does not exist or is not a folder")
        if config.adapter is not None and not (Path(config.adapter) / "adapter_config.json").is_file():
            raise FileNotFoundError(f"adapter {config.adapter} holds no adapter_config.json")
        self.config = config
        torch.set_num_threads(torch_threads(config.torch_threads))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        bf16 = use_bf16(config.precision)
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.bfloat16 if bf16 else torch.float32)
        if config.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, config.adapter).merge_and_unload()
        self.model = model.to(device).eval()
        self._heads = (self.model.get_output_embeddings(), prepacked_output_layer(self.model))
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos])
        self._default_top_k = self.model.generation_config.top_k or self.model.config.vocab_size
        # transformers renamed forward's `past_key_values` to `cache` (5.24); take whichever this version has.
        self._cache_argument = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self._add_bos = self._tokenizer_adds_bos()
        self._guide = SchemaGuide(self.tokenizer, self.model.config.vocab_size, self._eos_ids)
        self.stats = DecodeStats()
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._clear_batch()
        self._worker = threading.Thread(target=self._serve, name="inprocess-decode", daemon=True)
        self._worker.start()

    # -- TextBackend --------------------------------------------------------------------------

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def chat(self, messages: list[dict[str, str]], sampling: SamplingConfig) -> Completion:
        return await self.complete(self.apply_chat_template(messages), sampling)

    async def complete(self, prompt: str, sampling: SamplingConfig) -> Completion:
        """Continue `prompt` exactly as given; BOS is prepended only if the tokenizer expects one and it is missing."""
        if self._closed:
            raise RuntimeError("InProcessBackend is closed")
        top = sampling.top_logprobs
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 0):
            raise ValueError(f"top_logprobs must be a non-negative integer, got {top!r}")
        matcher = None
        if sampling.json_schema is not None:  # compiled off the event loop: the first one builds the token trie
            matcher = await asyncio.to_thread(self._guide.matcher, sampling.json_schema)
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if self._add_bos and (not ids or ids[0] != self.tokenizer.bos_token_id):
            ids = [self.tokenizer.bos_token_id, *ids]
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Request(ids, sampling, future, loop, matcher))
        return await future

    # -- lifecycle ----------------------------------------------------------------------------

    def is_serving(self) -> bool:
        """True while the decode worker runs and the backend takes requests."""
        return not self._closed and self._worker.is_alive()

    def close(self) -> None:
        """Stop the worker after its current step; fail the requests it did not finish."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_SHUTDOWN)
        self._worker.join()
        leftovers = [row.request for row in self._rows]
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _SHUTDOWN:
                leftovers.append(item)
        self._fail(leftovers, _closed_error())
        self._clear_batch()

    def __enter__(self) -> InProcessBackend:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- worker -------------------------------------------------------------------------------

    def _tokenizer_adds_bos(self) -> bool:
        bos = self.tokenizer.bos_token_id
        return bos is not None and self.tokenizer("a")["input_ids"][:1] == [bos]

    def _clear_batch(self) -> None:
        """No rows: the running batch's cache, attention mask and per-row tensors are empty."""
        self._rows: list[_Row] = []
        self._cache = None  # a DynamicCache: per layer keys and values, each [rows, heads, length, head_dim]
        self._mask = None  # [rows, length]: 1 where the cache holds a real token
        self._seen = None  # [rows, vocab] bool: tokens the repetition penalty applies to
        self._next = None  # [rows] the token each row feeds next (sampled, not yet in the cache)

    def _serve(self) -> None:
        while True:
            arrivals, shutting_down = self._take_arrivals()
            if shutting_down:
                self._fail(arrivals, _closed_error())
                return
            try:
                if arrivals:
                    self._admit(arrivals)
                if self._rows:
                    self._decode_step()
            except Exception as error:  # the callers get the failure; the worker keeps serving
                self._fail([row.request for row in self._rows] + arrivals, error)
                self._clear_batch()

    def _take_arrivals(self) -> tuple[list[_Request], bool]:
        """Requests for the free rows: block while idle, then gather companions for batch_wait_s."""
        free = self.config.max_batch_size - len(self._rows)
        arrivals: list[_Request] = []
        deadline = None
        while len(arrivals) < free:
            try:
                if self._rows:
                    item = self._queue.get_nowait()
                elif not arrivals:
                    item = self._queue.get()
                    deadline = time.monotonic() + self.config.batch_wait_s
                else:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _SHUTDOWN:
                return arrivals, True
            arrivals.append(item)
        return arrivals, False

    def _admit(self, arrivals: list[_Request]) -> None:
        """Prefill the arrivals together, sample their first tokens, and stack their rows under the batch."""
        started = time.perf_counter()
        self.stats.prefill_sizes.append(len(arrivals))
        device = self.model.device
        # Arrivals with the same prompt (the n samples of one instruction) share one prefill row.
        distinct: dict[tuple[int, ...], int] = {}
        row_of = [distinct.setdefault(tuple(r.prompt_ids), len(distinct)) for r in arrivals]
        prompts = [list(prompt) for prompt in distinct]
        self.stats.prefill_tokens += sum(len(p) for p in prompts)
        padded = self.tokenizer.pad({"input_ids": prompts}, return_tensors="pt").to(device)
        mask = padded["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = SpareRoomCache()
        self._use_output_layer_for(len(prompts))
        with torch.inference_mode():
            output = self.model(
                input_ids=padded["input_ids"], attention_mask=mask, position_ids=positions,
                use_cache=True, logits_to_keep=1, **{self._cache_argument: cache},
            )
        logits = output.logits
        if len(prompts) < len(arrivals):
            order = torch.tensor(row_of, device=device)
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys.index_select(0, order), layer.values.index_select(0, order)
            padded = {"input_ids": padded["input_ids"][order]}
            mask, logits = mask[order], logits[order]
        # Each row's prompt tokens count as seen; padding columns repeat the row's last (real) token.
        real_ids = torch.where(mask.bool(), padded["input_ids"], padded["input_ids"][:, -1:])
        seen = torch.zeros(len(arrivals), self.model.config.vocab_size, dtype=torch.bool, device=device)
        seen.scatter_(1, real_ids, True)
        rows = [_Row(request, _seeded_generator(request.sampling, device),
                     logprobs=None if request.sampling.top_logprobs is None else []) for request in arrivals]
        self._stack(rows, cache, mask, seen)
        first = len(self._rows) - len(rows)
        self._pick_next(logits[:, -1, :].float(), range(first, len(self._rows)))
        self.stats.prefill_seconds += time.perf_counter() - started

    def _stack(self, rows: list[_Row], cache, mask, seen) -> None:
        """Append rows below the batch, left-padding whichever cache is shorter."""
        if not self._rows:
            self._rows, self._cache, self._mask, self._seen = rows, cache, mask, seen
            self._next = torch.zeros(len(rows), dtype=torch.long, device=mask.device)
            return
        length = max(self._mask.size(1), mask.size(1))
        for old, new in zip(self._cache.layers, cache.layers):
            old.keys = torch.cat([_left_pad(old.keys, length), _left_pad(new.keys, length)])
            old.values = torch.cat([_left_pad(old.values, length), _left_pad(new.values, length)])
        self._mask = torch.cat([_left_pad(self._mask, length), _left_pad(mask, length)])
        self._seen = torch.cat([self._seen, seen])
        self._next = torch.cat([self._next, torch.zeros(len(rows), dtype=torch.long, device=mask.device)])
        self._rows = self._rows + rows

    def _decode_step(self) -> None:
        """Feed every row its next token, then pick the following one."""
        started = time.perf_counter()
        self.stats.decode_steps += 1
        self.stats.rows_decoded += len(self._rows)
        mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], dim=1)
        positions = self._mask.sum(dim=1, keepdim=True)
        self._use_output_layer_for(len(self._rows))
        with torch.inference_mode():
            output = self.model(
                input_ids=self._next.unsqueeze(-1), attention_mask=mask, position_ids=positions,
                use_cache=True, **{self._cache_argument: self._cache},
            )
        self._mask = mask
        self._pick_next(output.logits[:, -1, :].float(), range(len(self._rows)))
        self.stats.decode_seconds += time.perf_counter() - started

    def _use_output_layer_for(self, rows: int) -> None:
        """The prepacked output layer (CPU fp32) up to PACKED_HEAD_MAX_ROWS rows, the model's own beyond."""
        plain, packed = self._heads
        head = packed if packed is not None and rows <= PACKED_HEAD_MAX_ROWS else plain
        if self.model.get_output_embeddings() is not head:
            self.model.set_output_embeddings(head)

    def _pick_next(self, logits, row_indices: range) -> None:
        """Choose the next token of the given rows, record it, and retire the rows that finished."""
        rows = [self._rows[i] for i in row_indices]
        index = torch.tensor(list(row_indices), device=logits.device)
        penalty = torch.tensor([r.request.sampling.repetition_penalty or 1.0 for r in rows], device=logits.device)
        scores = penalize_repeats(logits, self._seen[index], penalty)
        guided = [i for i, r in enumerate(rows) if r.matcher is not None]
        if guided:
            self._guide.mask(scores, guided, [rows[i].matcher for i in guided])
        chosen = scores.argmax(dim=-1)
        # Per row asking for logprobs: (log-probs, token ids) of the distribution its token came from.
        sampled = [i for i, r in enumerate(rows) if r.request.sampling.do_sample]
        drawn_from = {i: (scores[i].log_softmax(-1), None) for i, r in enumerate(rows)
                      if r.logprobs is not None and not r.request.sampling.do_sample}
        if sampled:
            values, candidates = self._warp(scores[sampled], [rows[i] for i in sampled])
            picks = self._draw(values.softmax(dim=-1), [rows[i] for i in sampled])
            chosen[sampled] = candidates.gather(-1, picks.unsqueeze(-1)).squeeze(-1)
            for position, i in enumerate(sampled):
                if rows[i].logprobs is not None:
                    drawn_from[i] = (values[position].log_softmax(-1), candidates[position])
        self._next[index] = chosen
        self._seen[index, chosen] = True
        finished = []
        for i, (row, token) in enumerate(zip(rows, chosen.tolist())):
            row.tokens.append(token)
            if i in drawn_from:
                row.logprobs.append(self._token_logprob(token, row.request.sampling.top_logprobs, *drawn_from[i]))
            if row.matcher is not None and token not in self._eos_ids:
                row.schema_done = self._guide.advance(row.matcher, token)
            if self._row_finished(row):
                finished.append(row)
        if finished:
            self._retire(finished)

    def _warp(self, scores, rows: list[_Row]):
        """The sampled rows' candidates after temperature, top-k and top-p: (values, token ids)."""
        settings = [r.request.sampling for r in rows]
        temperature = torch.tensor([s.temperature for s in settings], device=scores.device)
        top_p = torch.tensor([s.top_p for s in settings], device=scores.device)
        top_k = [s.top_k or self._default_top_k for s in settings]
        return warp_top_k_top_p(scores, temperature, top_k, top_p)

    @staticmethod
    def _draw(probs, rows: list[_Row]):
        """One candidate position per row; a seeded row draws from its own generator."""
        picks = torch.empty(len(rows), dtype=torch.long, device=probs.device)
        unseeded = [i for i, r in enumerate(rows) if r.generator is None]
        if unseeded:
            picks[unseeded] = torch.multinomial(probs[unseeded], 1).squeeze(-1)
        for i, row in enumerate(rows):
            if row.generator is not None:
                picks[i] = torch.multinomial(probs[i], 1, generator=row.generator)[0]
        return picks

    def _token_logprob(self, token: int, top_n: int, logprobs, token_ids) -> TokenLogprob:
        """`token`'s log-probability and the `top_n` best finite alternatives, from a distribution over
        the vocabulary (`token_ids` None) or over candidate `token_ids`. Alternatives that decode to the
        same text (byte pieces of one character) share an entry holding their summed probability."""
        best = logprobs.topk(min(top_n, logprobs.numel()))
        if token_ids is None:
            chosen = float(logprobs[token])
            best_ids = best.indices.tolist()
        else:
            chosen = float(logprobs[(token_ids == token).nonzero()[0, 0]])
            best_ids = token_ids[best.indices].tolist()
        top: dict[str, float] = {}
        for token_id, value in zip(best_ids, best.values.tolist()):
            if value == -math.inf:
                break
            text = self.tokenizer.decode([token_id])
            top[text] = _log_add(top[text], value) if text in top else value
        return TokenLogprob(self.tokenizer.decode([token]), chosen, top)

    def _row_finished(self, row: _Row) -> bool:
        sampling = row.request.sampling
        if row.tokens[-1] in self._eos_ids or len(row.tokens) >= sampling.max_tokens or row.schema_done:
            return True
        if not sampling.stop:
            return False
        # A new stop string must end in the last token: decode a window long enough to hold any of them.
        window = 4 * max(len(s) for s in sampling.stop) + 4
        return truncate_at_stop(self.tokenizer.decode(row.tokens[-window:], skip_special_tokens=True), sampling.stop)[1]

    def _retire(self, finished: list[_Row]) -> None:
        """Resolve the finished rows' futures and drop them (and the cache columns nobody needs)."""
        done = {id(row) for row in finished}
        for row in finished:
            completion = completion_from_tokens(row.tokens, len(row.request.prompt_ids), row.request.sampling,
                                                self.tokenizer, self._eos_ids, row.logprobs, row.schema_done)
            _settle_in_loop(row.request, _resolve, completion)
        keep = [i for i, row in enumerate(self._rows) if id(row) not in done]
        if not keep:
            self._clear_batch()
            return
        index = torch.tensor(keep, device=self._mask.device)
        mask = self._mask[index]
        start = int(mask.any(dim=0).int().argmax())  # leading columns that are padding for every row left
        for layer in self._cache.layers:
            layer.keys, layer.values = layer.keys[index, :, start:], layer.values[index, :, start:]
        self._mask = mask[:, start:]
        self._seen, self._next = self._seen[index], self._next[index]
        self._rows = [self._rows[i] for i in keep]

    @staticmethod
    def _fail(requests: list[_Request], error: BaseException) -> None:
        for request in requests:
            _settle_in_loop(request, _reject, error)


def _left_pad(tensor, length: int):
    """Zeros before the sequence dimension's start so it has `length` entries (dim 1 of a mask, dim 2 of a cache)."""
    seq_dim = 1 if tensor.dim() == 2 else 2
    missing = length - tensor.size(seq_dim)
    if missing == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - seq_dim) + [missing, 0]
    return F.pad(tensor, pad)


def _closed_error() -> RuntimeError:
    return RuntimeError("InProcessBackend closed before this request finished")


def _seeded_generator(sampling: SamplingConfig, device):
    if not sampling.do_sample or sampling.seed is None:
        return None
    return torch.Generator(device=device).manual_seed(sampling.seed)


def completion_from_tokens(
    tokens: list[int], prompt_tokens: int, sampling: SamplingConfig, tokenizer, eos_ids: set[int],
    logprobs: list[TokenLogprob] | None = None, schema_done: bool = False,
) -> Completion:
    """A finished row as a Completion: cut at EOS (counted, not shown) or the first stop string (not
    shown), and say why it ended. `logprobs` keep one entry per shown token; a completed JSON schema
    ends the reply like EOS does."""
    ended_by_eos = False
    for index, token in enumerate(tokens):
        if token in eos_ids:
            tokens, ended_by_eos = tokens[: index + 1], True
            break
    shown = tokens[:-1] if ended_by_eos else tokens
    text, stopped = truncate_at_stop(tokenizer.decode(shown, skip_special_tokens=True), sampling.stop)
    return Completion(
        text=text,
        finish_reason="stop" if ended_by_eos or stopped or schema_done else "length",
        prompt_tokens=prompt_tokens,
        completion_tokens=len(tokens),
        logprobs=None if logprobs is None else logprobs[: len(shown)],
    )


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow."""
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _settle_in_loop(request: _Request, settle, value) -> None:
    """Hand `value` to the request's future in its loop; a loop already closed (the caller was
    interrupted and asyncio.run has returned) has nobody waiting, so there is nothing to do."""
    try:
        request.loop.call_soon_threadsafe(settle, request.future, value)
    except RuntimeError:
        if not request.loop.is_closed():
            raise


def _resolve(future: asyncio.Future, completion: Completion) -> None:
    if not future.done():
        future.set_result(completion)


def _reject(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
