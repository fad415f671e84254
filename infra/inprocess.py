"""A TextBackend that runs the model in this process with continuous batching.

Why not `transformers serve --continuous-batching` on a CPU: it fixes the sampling of every request
from the first one it receives, drops `repetition_penalty` and ignores stop strings. Why not batched
`generate` calls (this module's first design): a request arriving during a call waits for the whole
call, requests with different sampling cannot share one, and a batch's tail decodes one or two rows
at a time; measured in `benchmarks/bench_synthesis.py`, that left the pipeline at about a third of
the batched ceiling.

So a worker thread owns a decode loop (the scheduler, this module). Every step it drops the rows
whose callers stopped waiting, admits waiting requests into free rows (one packed prefill, each row
with its own key/value cache), runs one forward pass for all rows (`infra.decoder`), and picks each
row's next token with that row's own sampling (`infra.sampler`). A row leaves as soon as it hits
EOS, a stop string, max_tokens or the end of its JSON schema; its caller's future resolves at once.

On a CPU several such loops ("lanes", one per core) run side by side, each on its own rows with one
torch thread: a step is mostly small per-row calls (attention over each row's own keys, Python per
row) that a second thread hardly speeds up (one attention call over 1,024 keys: 101 us on one thread,
103 us on two), so on 2 cores two single-threaded lanes wrote the same 32 texts 1.12x faster than one
lane with two threads. Waiting requests go to whichever lane has a free row first.

A seeded request gets the same text whatever else is in flight, in fp32 and in bf16: the forward
pass and the sampler compute each row as if it were alone (`infra.decoder` says how).

A request with `json_schema` gets its own llguidance matcher (`infra.structured`): each step its
row's logits are masked to the tokens the schema allows, then the chosen token is fed back to
the matcher. With `top_logprobs`, each generated token comes back with its log-probability and the
n best alternatives', read from the distribution the token was drawn from: logits after the
repetition penalty and the schema mask, then for sampled rows after temperature, top-k and top-p
(tokens those cut have no probability and are never listed); greedy rows use temperature 1.

Callers stay plain async code: `chat`/`complete` queue a request and await a future; cancelling the
await (a timeout, Ctrl-C, a pipeline that has enough) takes the row out at the next step, and a
request still queued is never prefilled. `torch_threads` sets torch's process-wide thread count: on
a shared 2-core machine one thread is ~10x faster than two that fight other processes for the cores.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from infra.backend import Completion, TokenLogprob, truncate_at_stop
from infra.compute import check_precision, torch_threads, use_bf16
from infra.decoder import InvariantDecoder, RowCache
from infra.drafter import NgramDrafter
from infra.sampler import TokenSampler
from infra.sampling import SamplingConfig, model_sampling_defaults
from infra.structured import SchemaGuide

PREFILL_TOKENS = 8192
"""Prompt tokens per prefill forward at most: bounds the activations a crowd of long prompts allocates."""


@dataclass
class InProcessConfig:
    """How to load and batch an in-process model.

    Fields:
        model: local checkpoint folder, or a Hub id already in the Hugging Face cache.
        adapter: optional LoRA adapter folder, merged into the weights at load.
        max_batch_size: most requests decoded together.
        batch_wait_s: how long an idle worker waits for companions of a first request.
        torch_threads: CPU threads for torch.
        lanes: decode loops side by side, each with its share of max_batch_size and its own thread.
        precision: weights' dtype.
    """

    model: Path = field(metadata={"help": "Local checkpoint folder (config, weights, tokenizer), or a cached Hub id."})
    adapter: Path | None = field(default=None, metadata={"help": "LoRA adapter folder merged into the model at load."})
    max_batch_size: int = field(default=16, metadata={"help": "Most requests decoded together."})
    batch_wait_s: float = field(
        default=0.01, metadata={"help": "Seconds an idle worker waits for more requests before its first prefill."}
    )
    torch_threads: int | None = field(
        default=None, metadata={"help": "CPU threads for torch; None takes the cores other processes leave idle."}
    )
    lanes: int | None = field(
        default=None, metadata={"help": "Decode loops run side by side, each on its own share of max_batch_size with "
                                        "torch_threads / lanes threads; None: one per torch thread on a CPU, one on "
                                        "a GPU. The lane a request decodes in changes none of its text."})
    precision: str = field(
        default="auto", metadata={"help": "'fp32', 'bf16', or 'auto': bf16 where the GPU or CPU computes it natively (AVX512-BF16 or AMX), else fp32."}
    )
    speculative_tokens: int = field(
        default=4, metadata={"help": "Tokens drafted per row and step by n-gram lookup and verified in one pass "
                                     "(more for rows that kept all their drafts while the step's decode tile has "
                                     "room); 0: none."}
    )
    ngram_longest: int = field(default=3, metadata={"help": "Longest suffix of a row looked up for a draft."})
    ngram_shortest: int = field(default=2, metadata={"help": "Shortest suffix of a row looked up for a draft."})

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.lanes is not None and (isinstance(self.lanes, bool) or not isinstance(self.lanes, int)
                                       or self.lanes < 1):
            raise ValueError(f"lanes must be a whole number of at least 1, got {self.lanes!r}")
        if self.speculative_tokens < 0:
            raise ValueError(f"speculative_tokens must be 0 or more, got {self.speculative_tokens}")
        if not 1 <= self.ngram_shortest <= self.ngram_longest:
            raise ValueError(f"ngram_shortest and ngram_longest must satisfy 1 <= shortest <= longest, got "
                             f"{self.ngram_shortest} and {self.ngram_longest}")
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
    """A request being decoded: its cache, the tokens it produced so far, and the one it feeds next."""

    request: _Request
    generator: object | None  # torch.Generator for a seeded request
    cache: RowCache
    seen: torch.Tensor  # token ids the repetition penalty applies to (prompt and output, each once)
    drafter: NgramDrafter
    tokens: list[int] = field(default_factory=list)
    drafted: int = 0
    accepted: int = 0
    streak: bool = False  # the last step kept every draft it verified: the row is likely repeating itself
    logprobs: list[TokenLogprob] | None = None  # filled when the request asks for top_logprobs
    schema_done: bool = False  # the JSON schema is complete and allows nothing more

    @property
    def matcher(self):
        return self.request.matcher


@dataclass
class _Lane:
    """One decode loop's rows: at most `capacity` of them, decoded together by one worker thread."""

    capacity: int
    rows: list[_Row] = field(default_factory=list)


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
    cancelled: int = 0
    """Requests whose callers stopped waiting: dropped from the queue or from the batch."""
    drafted: int = 0
    """Draft tokens verified (n-gram speculative decoding)."""
    accepted: int = 0
    """Draft tokens kept: accepted / drafted is the acceptance rate."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts) -> None:
        """Add to the named counters (a list field: its items appended); lanes on other threads add too,
        and `+=` from two threads can lose an update."""
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)


class InProcessBackend:
    """Loads a model once and serves `chat`/`complete` from any number of concurrent async callers.

    Use as a context manager (`with InProcessBackend(config) as backend:`) so the worker thread
    always stops; requests still waiting or decoding at close fail with a RuntimeError.
    """

    features = frozenset({"json_schema", "top_logprobs"})

    def __init__(self, config: InProcessConfig) -> None:
        folder = local_checkpoint(config.model)
        if config.adapter is not None and not (Path(config.adapter) / "adapter_config.json").is_file():
            raise FileNotFoundError(f"adapter {config.adapter} holds no adapter_config.json")
        self.config = config
        device = "cuda" if torch.cuda.is_available() else "cpu"
        threads = torch_threads(config.torch_threads)
        lanes = min(1 if device == "cuda" else config.lanes or threads, config.max_batch_size)
        torch.set_num_threads(max(1, threads // lanes))
        bf16 = use_bf16(config.precision)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16 if bf16 else torch.float32)
        if config.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, config.adapter).merge_and_unload()
        self.model = model.to(device).eval()
        self.decoder = InvariantDecoder(self.model)
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.sampling_defaults = model_sampling_defaults(self.model.generation_config)
        self._sampler = TokenSampler(self.tokenizer, self.sampling_defaults.get("top_k") or self.model.config.vocab_size,
                                     self.sampling_defaults.get("repetition_penalty"))
        self._add_bos = self._tokenizer_adds_bos()
        self._guide = SchemaGuide(self.tokenizer, self.model.config.vocab_size, self._eos_ids)
        self.stats = DecodeStats()
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lanes = [_Lane(config.max_batch_size // lanes + (index < config.max_batch_size % lanes))
                       for index in range(lanes)]
        self._workers = [threading.Thread(target=self._serve, args=(lane,), name=f"inprocess-decode-{index}",
                                          daemon=True) for index, lane in enumerate(self._lanes)]
        for worker in self._workers:
            worker.start()

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

    def describe_lanes(self) -> str:
        """How the decode work is laid out, for a server's log: lanes, their rows, torch threads each."""
        rows = " + ".join(str(lane.capacity) for lane in self._lanes)
        threads = torch.get_num_threads()
        return (f"{len(self._lanes)} decode lane{'s' if len(self._lanes) > 1 else ''} ({rows} rows), "
                f"{threads} torch thread{'s' if threads > 1 else ''} each")

    def is_serving(self) -> bool:
        """True while the decode workers run and the backend takes requests."""
        return not self._closed and all(worker.is_alive() for worker in self._workers)

    def close(self) -> None:
        """Stop the workers after their current steps; fail the requests they did not finish."""
        if self._closed:
            return
        self._closed = True
        for _ in self._workers:
            self._queue.put(_SHUTDOWN)  # one each: a worker stops at the first it takes
        for worker in self._workers:
            worker.join()
        leftovers = [row.request for lane in self._lanes for row in lane.rows]
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _SHUTDOWN:
                leftovers.append(item)
        self._fail(leftovers, _closed_error())
        for lane in self._lanes:
            lane.rows = []

    def __enter__(self) -> InProcessBackend:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- worker -------------------------------------------------------------------------------

    def _tokenizer_adds_bos(self) -> bool:
        bos = self.tokenizer.bos_token_id
        return bos is not None and self.tokenizer("a")["input_ids"][:1] == [bos]

    def _serve(self, lane: _Lane) -> None:
        while not self._closed:  # a full lane never looks at the queue, so it would not see the sentinel
            arrivals, shutting_down = self._take_arrivals(lane)
            if shutting_down:
                self._fail(arrivals, _closed_error())
                return
            try:
                with torch.inference_mode():
                    if arrivals:
                        self._admit(lane, arrivals)
                    self._drop_abandoned(lane)
                    if lane.rows:
                        self._decode_step(lane)
            except Exception as error:  # the callers get the failure; the worker keeps serving
                self._fail([row.request for row in lane.rows] + arrivals, error)
                lane.rows = []  # their caches go with them

    def _take_arrivals(self, lane: _Lane) -> tuple[list[_Request], bool]:
        """Requests for the lane's free rows: block while idle, then gather companions for batch_wait_s.
        A request whose caller stopped waiting is dropped here, before any prefill."""
        free = lane.capacity - len(lane.rows)
        arrivals: list[_Request] = []
        deadline = None
        while len(arrivals) < free:
            try:
                if lane.rows:
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
            if item.future.done():  # cancelled while queued
                self.stats.add(cancelled=1)
                continue
            arrivals.append(item)
        return arrivals, False

    def _drop_abandoned(self, lane: _Lane) -> None:
        """Take out the rows whose callers cancelled their await; nobody reads what they would write."""
        keep = [row for row in lane.rows if not row.request.future.done()]
        self.stats.add(cancelled=len(lane.rows) - len(keep))
        lane.rows = keep

    def _admit(self, lane: _Lane, arrivals: list[_Request]) -> None:
        """Prefill the arrivals' prompts, each into its own cache, and pick their first tokens."""
        started = time.perf_counter()
        # Arrivals with the same prompt (the n samples of one instruction) share one prefill.
        distinct: dict[tuple[int, ...], int] = {}
        row_of = [distinct.setdefault(tuple(r.prompt_ids), len(distinct)) for r in arrivals]
        prompts = [list(prompt) for prompt in distinct]
        caches = [self.decoder.new_cache() for _ in prompts]
        logits = torch.cat([self.decoder.forward([(caches[i], prompts[i]) for i in group], prefill=True)
                            for group in _token_bounded_groups([len(p) for p in prompts], PREFILL_TOKENS)])
        device = logits.device
        taken: set[int] = set()
        rows = []
        for request, prompt in zip(arrivals, row_of):
            cache = caches[prompt] if prompt not in taken else caches[prompt].copy()
            taken.add(prompt)
            rows.append(_Row(request, _seeded_generator(request.sampling, device), cache,
                             seen=torch.tensor(sorted(set(request.prompt_ids)), dtype=torch.long, device=device),
                             drafter=NgramDrafter(request.prompt_ids, self.config.ngram_longest,
                                                  self.config.ngram_shortest),
                             logprobs=None if request.sampling.top_logprobs is None else []))
        lane.rows = lane.rows + rows
        self.stats.add(prefill_sizes=[len(arrivals)], prefill_tokens=sum(len(p) for p in prompts),
                       prefill_seconds=time.perf_counter() - started)
        self._verify(lane, logits[row_of], rows, [self._guesses(row, 0) for row in rows], [0] * len(rows))

    def _decode_step(self, lane: _Lane) -> None:
        """Feed every row its last token and its drafts, then keep what the model agrees with."""
        started = time.perf_counter()
        rows = list(lane.rows)
        self.stats.add(decode_steps=1, rows_decoded=len(rows))
        lengths = self._draft_lengths(rows)
        guesses = [self._guesses(row, length) for row, length in zip(rows, lengths)]
        fed = [min(length, len(guess)) for length, guess in zip(lengths, guesses)]
        logits = self.decoder.forward(
            [(row.cache, row.tokens[-1:] + guess[:count]) for row, guess, count in zip(rows, guesses, fed)],
            prefill=False)
        self._verify(lane, logits, rows, guesses, fed)
        self.stats.add(decode_seconds=time.perf_counter() - started)

    def _draft_lengths(self, rows: list[_Row]) -> list[int]:
        """How many drafts each row verifies this step, never past its max_tokens: `speculative_tokens`,
        and for rows on a streak (all drafts kept last step) a share of the last decode tile's spare rows,
        which cost no more matmul time. The length changes no text (see `infra.sampler`), only the speed."""
        base = self.config.speculative_tokens
        if base == 0:
            return [0] * len(rows)
        streaks = sum(row.streak for row in rows)
        extra = (-len(rows) * (1 + base) % self.decoder.tiles.decode) // streaks if streaks else 0
        return [min(base + (extra if row.streak else 0), row.request.sampling.max_tokens - len(row.tokens) - 1)
                for row in rows]

    def _guesses(self, row: _Row, length: int) -> list[int]:
        """The drafter's guesses for the row's next `length` + 1 positions (fewer where it has none): the
        first `length` are verified as drafts, the last only orders the sampler's draw at the position after
        them, as it would if it had been drafted. None at all with speculative decoding off."""
        if self.config.speculative_tokens == 0:
            return []
        return row.drafter.propose(max(length, 0) + 1)

    def _verify(self, lane: _Lane, logits, rows: list[_Row], guesses: list[list[int]], fed: list[int]) -> None:
        """Walk each row's positions in order: keep the `fed` drafts (the first of its `guesses`) while the
        sampler accepts them, then take the sampler's own token; the penalty, the schema mask and the stop
        checks see every position exactly as one-token-at-a-time decoding would. Retire the rows that finished."""
        finished = []
        start = 0
        kept_in_step = 0
        for row, guess, count in zip(rows, guesses, fed):
            positions, start = logits[start:start + count + 1], start + count + 1
            before = len(row.tokens)
            kept = 0
            for position in range(count + 1):
                if row.matcher is not None:
                    self._guide.mask(positions, [position], [row.matcher])
                proposed = guess[position] if position < len(guess) else None
                choice, accepted = self._sampler.verify(positions[position], row.request.sampling, row.seen,
                                                        row.generator, proposed)
                self._record(row, choice)
                accepted = accepted and position < count  # the guess after the drafts was not fed
                kept += accepted
                if self._row_finished(row):
                    finished.append(row)
                    break
                if not accepted:
                    break
            row.cache.length -= count - kept  # the rejected drafts' keys are written over next step
            row.drafter.extend(row.tokens[before:])
            row.streak = count > 0 and kept == count
            row.drafted, row.accepted = row.drafted + count, row.accepted + kept
            kept_in_step += kept
        self.stats.add(drafted=sum(fed), accepted=kept_in_step)
        if finished:
            self._retire(lane, finished)

    def _record(self, row: _Row, choice) -> None:
        """Append the chosen token to the row: output, penalty set, log-probabilities, schema state."""
        token = choice.token
        row.tokens.append(token)
        if not bool((row.seen == token).any()):
            row.seen = torch.cat([row.seen, row.seen.new_tensor([token])])
        if row.logprobs is not None:
            row.logprobs.append(choice.logprob)
        if row.matcher is not None and token not in self._eos_ids:
            row.schema_done = self._guide.advance(row.matcher, token)

    def _row_finished(self, row: _Row) -> bool:
        sampling = row.request.sampling
        if row.tokens[-1] in self._eos_ids or len(row.tokens) >= sampling.max_tokens or row.schema_done:
            return True
        if not sampling.stop:
            return False
        # A new stop string must end in the last token: decode a window long enough to hold any of them.
        window = 4 * max(len(s) for s in sampling.stop) + 4
        return truncate_at_stop(self.tokenizer.decode(row.tokens[-window:], skip_special_tokens=True), sampling.stop)[1]

    def _retire(self, lane: _Lane, finished: list[_Row]) -> None:
        """Resolve the finished rows' futures and drop them with their caches."""
        done = {id(row) for row in finished}
        for row in finished:
            completion = completion_from_tokens(row.tokens, len(row.request.prompt_ids), row.request.sampling,
                                                self.tokenizer, self._eos_ids, row.logprobs, row.schema_done)
            completion.draft_tokens, completion.accepted_draft_tokens = row.drafted, row.accepted
            _settle_in_loop(row.request, _resolve, completion)
        lane.rows = [row for row in lane.rows if id(row) not in done]

    @staticmethod
    def _fail(requests: list[_Request], error: BaseException) -> None:
        for request in requests:
            _settle_in_loop(request, _reject, error)


def local_checkpoint(model: Path) -> Path:
    """The folder to load: `model` itself, or a Hub id's snapshot in the Hugging Face cache. Nothing is
    downloaded (the harness refuses an uncached Hub id before any work); a name that is neither fails here."""
    if model.is_dir():
        return model
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model), local_files_only=True))
    except Exception:  # not a repo id, or not cached
        raise FileNotFoundError(f"model path {model} does not exist or is not a folder, and no Hub model of that "
                                f"id is in the Hugging Face cache") from None


def _token_bounded_groups(lengths: list[int], budget: int) -> list[list[int]]:
    """Consecutive indices grouped so that each group's lengths add up to at most `budget` (a longer
    one alone)."""
    groups: list[list[int]] = []
    total = 0
    for index, length in enumerate(lengths):
        if not groups or total + length > budget:
            groups.append([])
            total = 0
        groups[-1].append(index)
        total += length
    return groups


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
