"""Fine-tune one role (Generator or Extender) with LoRA: the paper's `train_role` step.

`train_role` is the paper's training step: supervised fine-tuning with TRL's `SFTTrainer` and a
PEFT LoRA adapter on a chat-messages JSONL file (`{"messages": [..., {"role": "assistant", ...}]}`).

Loss on the answer only. TRL's `assistant_only_loss` needs `{% generation %}` markers in the chat
template, which ChatML templates (SmolLM2, Qwen, the test model) lack. So each line is turned into
TRL's conversational prompt-completion format (`prompt` = every message before the last,
`completion` = the final assistant message), for which TRL masks the prompt by default
(`completion_only_loss`). This works with any chat template and matches LLaMA-Factory's
`train_on_prompt: false`, which the reference implementation uses.

Iterations: `init_adapter` continues from the previous iteration's adapter (loaded trainable).
Crash safety: `train_stats.json` is written last, atomically, and marks the run finished; a rerun on
a finished `output_dir` returns at once, and a rerun after a crash resumes from the last checkpoint
in `output_dir/checkpoints/`.

Several processes (DDP): `num_processes: N` makes `train_role` run itself under `accelerate launch`,
one process per GPU, or N CPU processes talking over gloo where there is no GPU; `deepspeed_config`
names a DeepSpeed JSON (ZeRO-3 for large models, as the reference does). The same by hand:

    accelerate launch --multi_gpu --num_processes 8 -m selflengthen.lora \\
        --train_file gen_sft.jsonl --base_model Qwen/Qwen2-7B-Instruct --output_dir iter1/gen \\
        --learning_rate 1e-4 --num_train_epochs 4

Any `TrainConfig` field is a `--flag` of that command line, or all of them a JSON file as its one argument.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infra.compute import check_precision, compute_threads, use_bf16
from infra.journal import iter_jsonl, write_json_atomically
from selflengthen.text import count_words

FINISHED_MARKER = "train_stats.json"
CHECKPOINTS_DIR = "checkpoints"


@dataclass
class TrainConfig:
    """How to fine-tune one role with LoRA.

    Defaults follow the reference implementation (Self-Lengthen's LLaMA-Factory templates:
    LoRA on all linear layers, rank 8, alpha 16, lr 1e-4, 4 epochs, cosine with 10% warmup,
    batch 1, cutoff 16384, bf16); the help text says where a default differs.

    Fields:
        LoRA: lora_r, lora_alpha, lora_dropout, target_modules.
        Optimisation: learning_rate, num_train_epochs, max_steps, per_device_train_batch_size,
            gradient_accumulation_steps, lr_scheduler_type, warmup_ratio, seed.
        Data: max_length.
        Compute: precision, torch_threads, activation_checkpointing, num_processes, deepspeed_config.
        Output: logging_steps, save_steps, save_total_limit.
    """

    # LoRA
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (reference: LLaMA-Factory default 8)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (reference: 2 x rank = 16)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (reference: 0)."})
    target_modules: str = field(
        default="all-linear",
        metadata={"help": "Modules that get adapters; 'all-linear' is the reference's `lora_target: all`."},
    )
    # Optimisation
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate (reference: 1e-4)."})
    num_train_epochs: float = field(default=4.0, metadata={"help": "Epochs over the data (reference: 4)."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimiser steps; -1 uses the epochs."})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "Sequences per device per step (reference: 1)."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimiser step (reference: 1)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule (reference: cosine)."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Share of steps spent warming up (reference: 0.1)."})
    seed: int = field(default=42, metadata={"help": "Seed for data order, LoRA initialisation and dropout."})
    # Data
    max_length: int = field(
        default=16384, metadata={"help": "Truncate each tokenized example to this many tokens (reference cutoff_len: 16384)."}
    )
    # Compute
    precision: str = field(
        default="auto",
        metadata={"help": "'bf16', 'fp32', or 'auto': bf16 where the GPU or CPU computes it natively (AVX512-BF16 or AMX), else fp32."},
    )
    torch_threads: int | None = field(
        default=None,
        metadata={"help": "CPU threads for torch; None takes the cores that other processes leave idle."},
    )
    activation_checkpointing: bool = field(
        default=True, metadata={"help": "Recompute activations to save memory on long answers (TRL's default)."}
    )
    num_processes: int = field(
        default=1,
        metadata={"help": "Training processes; above 1 the training runs under `accelerate launch` (DDP), one process "
                          "per GPU, or that many CPU processes (gloo) where there is no GPU. Each step then takes "
                          "per_device_train_batch_size x gradient_accumulation_steps x num_processes examples."},
    )
    deepspeed_config: str | None = field(
        default=None,
        metadata={"help": "A DeepSpeed JSON config file for the trainer (e.g. ZeRO-3 for models that do not fit one "
                          "GPU, as the reference's LLaMA-Factory runs do); needs GPUs and `pip install deepspeed`."},
    )
    # Output
    logging_steps: int = field(default=10, metadata={"help": "Log the loss every this many steps (reference: 10)."})
    save_steps: int = field(default=500, metadata={"help": "Checkpoint every this many steps, for resuming (reference: 500)."})
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep at most this many checkpoints (reference keeps all)."}
    )

    def __post_init__(self) -> None:
        """Refuse settings no trainer can use, before a model is loaded."""
        check_precision(self.precision)
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate >= 0):  # 0 freezes the weights
            raise ValueError(f"learning_rate must be a finite number >= 0, got {self.learning_rate}")
        if not (math.isfinite(self.num_train_epochs) and self.num_train_epochs > 0):
            raise ValueError(f"num_train_epochs must be a finite number > 0, got {self.num_train_epochs}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"max_steps must be at least 1, or -1 to use the epochs, got {self.max_steps}")
        for name in ("lora_r", "lora_alpha", "per_device_train_batch_size", "gradient_accumulation_steps",
                     "max_length", "logging_steps", "save_steps", "num_processes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("save_total_limit", "torch_threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 or unset, got {getattr(self, name)}")
        if self.deepspeed_config is not None and not Path(self.deepspeed_config).is_file():
            raise ValueError(f"deepspeed_config {self.deepspeed_config} is not a file (a DeepSpeed JSON config)")


def load_prompt_completion_pairs(train_file: Path) -> list[dict[str, list[dict[str, str]]]]:
    """Read chat-messages JSONL and split each line into TRL's prompt-completion form."""
    train_file = Path(train_file)
    if not train_file.is_file():
        raise FileNotFoundError(f"training file {train_file} does not exist")
    pairs = []
    for number, record in iter_jsonl(train_file):
        where = f"{train_file} line {number}"
        messages = record.get("messages")
        if not isinstance(messages, list) or len(messages) < 2:
            raise ValueError(f"{where}: expected {{\"messages\": [...]}} with a prompt and an answer")
        if any(not isinstance(m, dict) or "role" not in m or "content" not in m for m in messages):
            raise ValueError(f"{where}: every message needs 'role' and 'content'")
        if messages[-1]["role"] != "assistant":
            raise ValueError(f"{where}: the last message must be the assistant's answer, got role {messages[-1]['role']!r}")
        pairs.append({"prompt": messages[:-1], "completion": [messages[-1]]})
    if not pairs:
        raise ValueError(f"training file {train_file} holds no examples")
    return pairs


def answer_length_stats(pairs: list[dict[str, list[dict[str, str]]]]) -> dict[str, float]:
    """Mean answer length in words (the paper's mixed English/Chinese count) and in characters."""
    answers = [pair["completion"][0]["content"] for pair in pairs]
    return {
        "answer_words_mean": sum(count_words(a) for a in answers) / len(answers),
        "answer_chars_mean": sum(len(a) for a in answers) / len(answers),
    }


def train_role(
    train_file: Path,
    base_model: str | Path,
    output_dir: Path,
    config: TrainConfig,
    init_adapter: Path | None = None,
) -> Path:
    """Fine-tune a LoRA adapter on `train_file` and save it with the tokenizer to `output_dir`.

    With `init_adapter`, training continues that adapter (its rank and targets win over `config`'s).
    Returns `output_dir`, which then holds the adapter, the tokenizer and `train_stats.json`
    (samples, mean answer words/characters, `train_tokens` = tokens in one pass over the tokenized
    data, `loss_tokens` = the answer tokens among them, steps, final and mean loss, wall time).
    With `config.num_processes` above 1 it runs itself under `accelerate launch` (`launch_training`).
    """
    if config.num_processes > 1 and _world_size() == 1:
        return launch_training(train_file, base_model, output_dir, config, init_adapter)
    import torch
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTConfig, SFTTrainer
    from datasets import Dataset

    output_dir = Path(output_dir)
    if (output_dir / FINISHED_MARKER).is_file():
        return output_dir
    if init_adapter is not None and not (Path(init_adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"init_adapter {init_adapter} holds no adapter_config.json")
    if isinstance(base_model, Path) and not base_model.is_dir():
        raise FileNotFoundError(f"base model {base_model} does not exist")
    pairs = load_prompt_completion_pairs(train_file)
    # The cores are split between the launched processes on this machine.
    torch.set_num_threads(config.torch_threads or compute_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    bf16 = use_bf16(config.precision)

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.bfloat16 if bf16 else torch.float32)
    peft_config = None
    if init_adapter is not None:
        model = PeftModel.from_pretrained(model, init_adapter, is_trainable=True)
    else:
        peft_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            task_type="CAUSAL_LM",
        )

    checkpoints = output_dir / CHECKPOINTS_DIR
    args = SFTConfig(
        output_dir=str(checkpoints),
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio in transformers 5
        seed=config.seed,
        max_length=config.max_length,
        bf16=bf16,
        deepspeed=config.deepspeed_config,
        use_cpu=not torch.cuda.is_available(),  # transformers refuses bf16 on a machine without a GPU unless told so
        activation_checkpointing=config.activation_checkpointing,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        completion_only_loss=True,
        report_to="none",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    if len(trainer.train_dataset) == 0:
        raise ValueError(f"no example in {train_file} keeps an answer token within max_length={config.max_length}")
    last_checkpoint = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=last_checkpoint)
    wall_seconds = time.monotonic() - started

    if not trainer.is_world_process_zero():
        return output_dir
    trainer.model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    tokenized = trainer.train_dataset
    logged_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    stats = {
        "samples": len(pairs),
        "samples_trained": len(tokenized),  # TRL drops examples whose answer max_length cut off entirely
        **answer_length_stats(pairs),
        "train_tokens": sum(len(ids) for ids in tokenized["input_ids"]),
        "loss_tokens": sum(sum(label != -100 for label in labels) for labels in tokenized["labels"]),
        "epochs": config.num_train_epochs if config.max_steps < 0 else trainer.state.epoch,
        "steps": trainer.state.global_step,
        "final_loss": logged_losses[-1] if logged_losses else None,
        "mean_loss": result.training_loss,
        "wall_seconds": wall_seconds,
        "resumed_from": last_checkpoint,
        "base_model": str(base_model),
        "init_adapter": str(init_adapter) if init_adapter is not None else None,
        "config": asdict(config),
    }
    write_json_atomically(output_dir / FINISHED_MARKER, stats)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return output_dir


def _world_size() -> int:
    """How many processes this training is one of (`accelerate launch` and torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launch_training(train_file: Path, base_model: str | Path, output_dir: Path, config: TrainConfig,
                    init_adapter: Path | None = None) -> Path:
    """`train_role` in `config.num_processes` processes under `accelerate launch`; same outputs and resume.

    accelerate's torchrun launcher (`--multi_gpu`) starts the processes; without a GPU each trains on the CPU
    and they talk over gloo (`--cpu` would start one process only, short of an MPI host file). The
    settings travel as one JSON file, so unset fields stay unset. The launch's output goes to
    `output_dir/launch.log`; Ctrl-C or SIGTERM stops every process, and a rerun resumes from the last checkpoint.
    """
    import torch

    output_dir = Path(output_dir)
    if (output_dir / FINISHED_MARKER).is_file():
        return output_dir
    gpus = torch.cuda.device_count()
    if gpus and config.num_processes > gpus:
        raise ValueError(f"num_processes is {config.num_processes} but this machine has {gpus} GPUs: one process per GPU")
    if config.deepspeed_config is not None and not gpus:
        raise ValueError("deepspeed_config needs GPUs; without one, train with num_processes alone (gloo on the CPU)")
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = {"train_file": str(train_file), "base_model": str(base_model), "output_dir": str(output_dir),
                "init_adapter": None if init_adapter is None else str(init_adapter), **asdict(config)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(settings, handle)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(config.num_processes), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(_free_port()), "-m", "selflengthen.lora",
               handle.name]
    log = output_dir / "launch.log"
    try:
        with log.open("a", encoding="utf-8") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = process.wait()
            except BaseException:
                _stop(process)
                raise
    finally:
        os.unlink(handle.name)
    if code != 0 or not (output_dir / FINISHED_MARKER).is_file():
        lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"accelerate launch with {config.num_processes} processes exited with {code}: "
                           f"{lines[-1] if lines else 'no output'} (see {log})")
    return output_dir


def _free_port() -> int:
    """A loopback port for the processes' rendezvous (29500, accelerate's default, may be another run's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Stop the launcher and every training process it started (they share its session)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class TrainPaths:
    """The command line's inputs and output, beside the `TrainConfig` flags."""

    train_file: Path = field(metadata={"help": "Chat-messages JSONL to train on."})
    base_model: str = field(metadata={"help": "Base model path or id."})
    output_dir: Path = field(metadata={"help": "Where the adapter goes."})
    init_adapter: Path | None = field(default=None, metadata={"help": "Adapter to continue from."})


def main(argv: list[str] | None = None) -> int:
    """Entry point for `accelerate launch -m selflengthen.lora` (one process per GPU): flags, or one JSON file."""
    from transformers import HfArgumentParser

    argv = sys.argv[1:] if argv is None else argv
    parser = HfArgumentParser((TrainPaths, TrainConfig))
    if len(argv) == 1 and argv[0].endswith(".json"):
        paths, config = parser.parse_json_file(argv[0])
    else:
        paths, config = parser.parse_args_into_dataclasses(argv)
    train_role(paths.train_file, paths.base_model, paths.output_dir, config, paths.init_adapter)
    return 0


if __name__ == "__main__":
    sys.exit(main())
