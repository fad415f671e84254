"""Wall time of one synthesis iteration: the reference's thread-pool client against transformers serve,
and the project's streamed pipeline with the in-process backend, on the same model and workload.

    python benchmarks/bench_synthesis.py [--model smollm2-135m] [--instructions 4] [--answers 4]
        [--extensions 1] [--max-tokens 192] [--cap 16] [--record benchmarks/RESULTS.md]

Three measurements, back to back in one process, each with one torch thread:

1. reference: what the reference Self-Lengthen code does. A pool of `cap` worker threads, one
   blocking OpenAI request per thread, a barrier after each step (self-instruct, then generate,
   then extend), and a rejected output retried by the step function calling itself (bounded),
   against `transformers serve --continuous-batching` started with the harness's ServerConfig.
2. pipeline: `run_synthesis` (streamed steps, one request cap over both roles) on the backend the
   harness picks for CPU synthesis, InProcessBackend with max batch = cap.
3. ceiling: `cap` long requests submitted at once to InProcessBackend with the reference
   sampling, no stop strings: the batched sampled tokens/s the pipeline could reach at best.

Both clients send the same prompts (the project's templates), with the same sampling, request
cap, attempt bounds and filters, and draw the same per-item random choices; their token counts
differ by sampling, and because the server ignores stop strings (it decodes to max_tokens where
the in-process model stops) and drops repetition_penalty. The seed file comes from
SELFLENGTHEN_DATA_DIR unless --seed-file is given.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_backends, reference_client beside this file

from bench_backends import measure  # noqa: E402
from reference_client import ClientRun, ReferenceClient, TokenTally  # noqa: E402

from harness.serving.models import DEFAULT_MODEL, resolve_model  # noqa: E402
from harness.serving.serve import ServerConfig, serve  # noqa: E402
from infra.backend import Completion, TextBackend  # noqa: E402
from selflengthen.config import SelfLengthenConfig, reference_sampling  # noqa: E402
from infra.inprocess import InProcessBackend, InProcessConfig  # noqa: E402
from infra.journal import write_text_atomically  # noqa: E402
from selflengthen.pipeline import run_synthesis  # noqa: E402
from selflengthen.self_instruct import load_seed_instructions  # noqa: E402

RESULT_LINE = "synthesis: {ratio}x, efficiency {efficiency}"
"""The line each run appends to RESULTS.md (reference wall time / pipeline wall time; pipeline
sampled tokens/s / in-process batched ceiling)."""


@dataclass
class SynthesisWorkload:
    """The work both clients do; the same for both.

    Fields: instructions, answers, extensions, max_tokens, cap, max_attempts, rounds,
    include_seeds, seed, lang, seed_file.
    """

    instructions: int = field(default=4, metadata={"help": "New instructions to self-instruct."})
    answers: int = field(default=4, metadata={"help": "Answers per instruction."})
    extensions: int = field(default=1, metadata={"help": "Extensions per accepted answer."})
    max_tokens: int = field(default=192, metadata={"help": "max_tokens of every request (reference: 16384)."})
    cap: int = field(default=16, metadata={"help": "Requests in flight: worker threads, pipeline cap, batch size."})
    max_attempts: int = field(
        default=2, metadata={"help": "Tries per slot in every step (reference: 10/20/20; small here to bound the run)."}
    )
    rounds: int = field(default=1, metadata={"help": "Extension rounds per attempt (project default 3)."})
    include_seeds: bool = field(
        default=True,
        metadata={"help": "Also answer the seed instructions (the reference answers only new ones): the generate "
                  "and extend steps then get as many slots in both clients whatever self-instruct accepts."},
    )
    seed: int = field(default=0, metadata={"help": "Seeds every per-item random choice."})
    lang: str = field(default="en", metadata={"help": "Language of the seed instructions and prompts."})
    seed_file: Path | None = field(
        default=None,
        metadata={"help": "JSONL seed instructions; default $SELFLENGTHEN_DATA_DIR/seed_instructions_<lang>.jsonl."},
    )

    def __post_init__(self) -> None:
        for name in ("instructions", "answers", "extensions", "max_tokens", "cap", "max_attempts", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def method_config(self) -> SelfLengthenConfig:
        """The pipeline's settings for this workload (the reference client reads the same ones)."""
        config = SelfLengthenConfig(
            languages=[self.lang],
            seed_files={self.lang: str(self.seed_file)} if self.seed_file else {},
            max_in_flight=self.cap,
            seed=self.seed,
            sampling=dataclasses.replace(reference_sampling(), max_tokens=self.max_tokens),
        )
        config.self_instruct.instructions_per_language = self.instructions
        config.self_instruct.max_attempts = self.max_attempts
        config.self_instruct.include_seeds = self.include_seeds
        config.generator.samples_per_instruction = self.answers
        config.generator.max_attempts = self.max_attempts
        config.extender.extensions_per_answer = self.extensions
        config.extender.max_attempts = self.max_attempts
        config.extender.rounds = self.rounds
        return config


class CountingBackend:
    """A TextBackend that passes every request on and tallies the tokens each reply took."""

    def __init__(self, backend: TextBackend, tally: TokenTally) -> None:
        self.backend, self.tally = backend, tally

    async def chat(self, messages: list[dict[str, str]], sampling) -> Completion:
        completion = await self.backend.chat(messages, sampling)
        self.tally.add(completion)
        return completion

    async def complete(self, prompt: str, sampling) -> Completion:
        completion = await self.backend.complete(prompt, sampling)
        self.tally.add(completion)
        return completion

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return self.backend.apply_chat_template(messages)


def run_reference(model: str, workload: SynthesisWorkload, server: ServerConfig, log_path: Path) -> ClientRun:
    """The reference client against a fresh transformers server warmed up with the reference sampling."""
    config = workload.method_config()
    seeds = load_seed_instructions(config.seed_file(workload.lang))
    with serve(model, server, log_path=log_path) as endpoint:
        client = ReferenceClient(endpoint, config, workload.lang)
        # continuous batching fixes every request's sampling from the first one it receives
        client.request(dataclasses.replace(config.sampling, max_tokens=4), messages=[{"role": "user", "content": "Hi"}])
        client.tally = TokenTally()
        client.rejections.clear()
        return client.run(seeds)


def run_pipeline(backend: InProcessBackend, workload: SynthesisWorkload, work_dir: Path) -> ClientRun:
    """`run_synthesis` on the in-process backend, both roles the same model as in the harness's first iteration."""
    tally = TokenTally()
    counting = CountingBackend(backend, tally)
    result = asyncio.run(run_synthesis(counting, counting, workload.method_config(), work_dir))
    return ClientRun(
        name="pipeline",
        seconds=result.seconds,
        requests=tally.requests,
        prompt_tokens=tally.prompt_tokens,
        completion_tokens=tally.completion_tokens,
        instruction_slots=result.instructions + result.instruction_slots_failed,
        instructions=result.instructions,
        answer_slots=result.initial_answers + result.initial_slots_failed,
        answers=result.initial_answers,
        extension_slots=result.extended_answers + result.extension_slots_failed,
        extensions=result.extended_answers,
        rejections=result.rejections,
    )


def run_benchmark(model: str, workload: SynthesisWorkload, log_dir: Path) -> dict:
    """Reference, pipeline and ceiling back to back; the report as a JSON-ready dict."""
    import torch

    torch.set_num_threads(1)
    load_start = os.getloadavg()
    server = dataclasses.replace(ServerConfig(), torch_threads=1)
    reference = run_reference(model, workload, server, log_dir / "server.log")
    with InProcessBackend(InProcessConfig(Path(model), max_batch_size=workload.cap, torch_threads=1)) as backend:
        asyncio.run(measure(backend, "sampled", 1, 4))  # first-call allocations
        before = dataclasses.replace(backend.stats, prefill_sizes=list(backend.stats.prefill_sizes))
        with tempfile.TemporaryDirectory(dir=log_dir) as work_dir:
            pipeline = run_pipeline(backend, workload, Path(work_dir))
        decoding = decode_report(before, backend.stats, pipeline.seconds)
        ceiling = asyncio.run(measure(backend, "sampled", workload.cap, workload.max_tokens))
    load_end = os.getloadavg()
    efficiency = pipeline.tokens_per_s / ceiling["tokens_per_s"] if ceiling["tokens_per_s"] else 0.0
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "model": model,
        "workload": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(workload).items()},
        "load_average_start": round(load_start[0], 2),
        "load_average_end": round(load_end[0], 2),
        "reference": report_row(reference),
        "pipeline": report_row(pipeline),
        "pipeline_decoding": decoding,
        "ceiling": ceiling,
        "ratio": round(reference.seconds / pipeline.seconds, 2) if pipeline.seconds > 0 else 0.0,
        "efficiency": round(efficiency, 2),
    }


def decode_report(before, after, seconds: float) -> dict:
    """How the in-process decode loop spent the pipeline's wall time (differences of two DecodeStats)."""
    steps = after.decode_steps - before.decode_steps
    prefill_s = after.prefill_seconds - before.prefill_seconds
    decode_s = after.decode_seconds - before.decode_seconds
    return {
        "mean_rows_per_step": round((after.rows_decoded - before.rows_decoded) / steps, 1) if steps else 0.0,
        "prefills": len(after.prefill_sizes) - len(before.prefill_sizes),
        "prefill_share": round(prefill_s / seconds, 2) if seconds else 0.0,
        "decode_share": round(decode_s / seconds, 2) if seconds else 0.0,
    }


def report_row(run: ClientRun) -> dict:
    row = dataclasses.asdict(run)
    row["seconds"] = round(run.seconds, 2)
    row["tokens_per_s"] = round(run.tokens_per_s, 1)
    return row


def machine() -> str:
    """CPU model and core count, e.g. 'Intel Xeon ... , 2 cores, Linux x86_64'."""
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        cpu = names[0] if names else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, {platform.system()} {platform.machine()}"


def results_section(report: dict) -> str:
    """The RESULTS.md entry of one run: heading, the result line, a table, the conditions."""
    w = report["workload"]
    rows = [
        ("reference (threads + transformers serve CB)", report["reference"]),
        ("pipeline (run_synthesis + InProcessBackend)", report["pipeline"]),
    ]
    lines = [
        f"## {report['date']}: {Path(report['model']).name}, {report['machine']}",
        "",
        RESULT_LINE.format(ratio=report["ratio"], efficiency=report["efficiency"]),
        "",
        f"Workload: {w['instructions']} instructions, {w['answers']} answers each, "
        f"{w['extensions']} extension(s) each, max_tokens {w['max_tokens']}, cap {w['cap']}, "
        f"max_attempts {w['max_attempts']}, rounds {w['rounds']}, seeds answered too: {w['include_seeds']}, "
        f"lang {w['lang']}, seed {w['seed']}. Load average (1 min) {report['load_average_start']} at start, "
        f"{report['load_average_end']} at end.",
        "",
        "| client | wall s | requests | prompt tokens | tokens | tokens/s "
        "| instructions (slots) | answers (slots) | extensions (slots) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows:
        lines.append(
            f"| {name} | {row['seconds']} | {row['requests']} | {row['prompt_tokens']} | {row['completion_tokens']} | "
            f"{row['tokens_per_s']} | "
            f"{row['instructions']} ({row['instruction_slots']}) | {row['answers']} ({row['answer_slots']}) | "
            f"{row['extensions']} ({row['extension_slots']}) |"
        )
    ceiling = report["ceiling"]
    lines.append(
        f"| ceiling (InProcessBackend, {ceiling['concurrent']} at once) | {ceiling['seconds']} | "
        f"{ceiling['concurrent']} | | {ceiling['tokens']} | {ceiling['tokens_per_s']} | | | |"
    )
    decoding = report["pipeline_decoding"]
    lines += [
        "",
        f"Pipeline decode loop: {decoding['mean_rows_per_step']} rows per decode step on average (cap {w['cap']}), "
        f"{decoding['prefills']} prefills; prefill took {decoding['prefill_share']} and decoding "
        f"{decoding['decode_share']} of the wall time.",
    ]
    return "\n".join(lines) + "\n"


def record_results(path: Path, report: dict) -> None:
    """Append this run's section to RESULTS.md, atomically (the old file stays whole on a crash)."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    write_text_atomically(path, old.rstrip("\n") + "\n\n" + results_section(report))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint folder, Hub id or smollm2-135m")
    for item in dataclasses.fields(SynthesisWorkload):
        flag = "--" + item.name.replace("_", "-")
        if item.type in ("bool",):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=item.default,
                                help=item.metadata["help"])
        else:
            kind = {"int": int, "str": str}.get(item.type, Path)
            parser.add_argument(flag, type=kind, default=item.default, help=item.metadata["help"])
    parser.add_argument("--log-dir", type=Path, default=None, help="where the server log and work files go")
    parser.add_argument("--record", type=Path, default=None, help="append the result to this RESULTS.md")
    args = vars(parser.parse_args(argv))
    model = resolve_model(args.pop("model"))
    record, log_dir = args.pop("record"), args.pop("log_dir")
    workload = SynthesisWorkload(**args)
    with tempfile.TemporaryDirectory() as scratch:
        report = run_benchmark(model, workload, Path(log_dir or scratch))
    print(json.dumps(report, indent=1))
    print(RESULT_LINE.format(ratio=report["ratio"], efficiency=report["efficiency"]))
    if record:
        record_results(record, report)
    return report


if __name__ == "__main__":
    main()
