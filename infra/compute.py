"""How much of the CPU to take, and in which precision to compute.

One thread heuristic for every process of ours (servers, the in-process engine, LoRA training).
"""

from __future__ import annotations

import os
import time

PRECISIONS = ("auto", "bf16", "fp32")

PRECISION_ENV = "SELFLENGTHEN_PRECISION"
"""Set to bf16 or fp32, it decides what `precision: auto` means on this machine: the way to run the
bf16 paths on a CPU without native bf16 (slower, same code) and the fp32 paths on one with it."""


def compute_threads(busy_processes: int = 1) -> int:
    """Torch threads per process when `busy_processes` of ours compute at once on this machine.

    Oversubscribing cores is far worse than idling one (measured on 2 cores: 1 thread ran 12.3
    tok/s where 2 threads fighting another process ran 1.05), so the cores are split between our
    processes, and cores busy with other work right now are left alone. "Right now" is measured
    over a fraction of a second: the load average lags by a minute and would count a process of
    ours that just finished.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    free = cores - round(busy_cores())
    return max(1, min(cores // max(1, busy_processes), free))


def torch_threads(requested: int | None) -> int:
    """The requested thread count (validated), else `compute_threads` for one busy process."""
    if requested is None:
        return compute_threads(1)
    if requested < 1:
        raise ValueError(f"torch_threads must be at least 1, got {requested}")
    return requested


def busy_cores(interval: float = 0.5) -> float:
    """How many cores other work keeps busy, from two readings of /proc/stat (load average elsewhere)."""
    def reading() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)

    try:
        busy_before, total_before = reading()
        time.sleep(interval)
        busy_after, total_after = reading()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = os.cpu_count() or 1
    return cores * (busy_after - busy_before) / max(1, total_after - total_before)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")


def forced_precision() -> str | None:
    """The precision that SELFLENGTHEN_PRECISION forces on `auto` (None when unset or empty)."""
    value = os.environ.get(PRECISION_ENV, "").strip()
    if not value:
        return None
    if value not in ("bf16", "fp32"):
        raise ValueError(f"{PRECISION_ENV} must be 'bf16' or 'fp32', got {value!r}")
    return value


def use_bf16(precision: str) -> bool:
    """'auto' means bf16 where the hardware computes it natively, fp32 elsewhere.

    On a GPU, torch says whether it supports bf16. On a CPU, torch is asked whether it found
    AVX512-BF16 or AMX tiles: without them bf16 matmuls are emulated and slower than fp32.
    SELFLENGTHEN_PRECISION, when set, overrides that choice (an explicit bf16/fp32 still wins).
    """
    import torch

    if precision == "auto":
        forced = forced_precision()
        if forced is not None:
            return forced == "bf16"
        if torch.cuda.is_available():
            return torch.cuda.is_bf16_supported()
        return cpu_computes_bf16()
    return precision == "bf16"


def cpu_computes_bf16() -> bool:
    """Whether torch's CPU kernels found native bf16 instructions (AVX512-BF16 or AMX) on this CPU."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
