"""`vllm serve` gets its dtype from the config, so the base and every trained arm are served in one precision.

The command lines are built, not run (no GPU here): a stand-in `vllm` on PATH lets `server_command` find
the executable it would start. What needs a GPU (vLLM loading the weights in that dtype, CUDA memory
handed back before it starts) is not exercised here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.serving.serve import ServerConfig, server_command, server_label

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def vllm_on_path(tmp_path, monkeypatch):
    """A `vllm` executable on PATH (never run), so the command line can be built without vLLM installed."""
    exe = tmp_path / "bin" / "vllm"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 1\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return str(exe)


def option(cmd: list[str], name: str) -> list[str]:
    """Every value given to `name` on the command line."""
    return [cmd[i + 1] for i, arg in enumerate(cmd) if arg == name]


def test_vllm_serves_in_bfloat16_by_default(vllm_on_path):
    cmd = server_command("/ckpt/merged", ServerConfig(kind="vllm"), 8123)
    assert cmd[:3] == [vllm_on_path, "serve", "/ckpt/merged"]
    assert option(cmd, "--dtype") == ["bfloat16"]


@pytest.mark.parametrize("dtype", ["float16", "float32", "auto"])
def test_vllm_serves_in_the_configured_dtype(vllm_on_path, dtype):
    cmd = server_command("/ckpt/merged", ServerConfig(kind="vllm", dtype=dtype, extra_args=["--max-model-len", "32768"]),
                         8123)
    assert option(cmd, "--dtype") == [dtype] and cmd[-2:] == ["--max-model-len", "32768"]


def test_the_base_and_a_trained_arm_get_the_same_dtype(vllm_on_path):
    config = ServerConfig(kind="vllm", extra_args=["--gpu-memory-utilization", "0.85"])
    base = server_command("Qwen/Qwen2.5-7B-Instruct", config, 8001)
    merged = server_command("runs/x/train/self_lengthen/iter_1/generator_merged", config, 8002)
    assert option(base, "--dtype") == option(merged, "--dtype") == ["bfloat16"]


def test_other_server_kinds_get_no_vllm_dtype():
    assert "--dtype" not in server_command("/ckpt", ServerConfig(kind="inprocess"), 8123)


def test_a_dtype_vllm_does_not_know_is_refused():
    with pytest.raises(UserError, match="server dtype must be one of bfloat16, float16, float32, auto, got 'bf16'"):
        ServerConfig(kind="vllm", dtype="bf16")


@pytest.mark.parametrize("extra", [["--dtype", "half"], ["--dtype=half"]])
def test_a_dtype_in_extra_args_is_refused_for_vllm(extra):
    with pytest.raises(UserError, match="set the server's dtype field instead"):
        ServerConfig(kind="vllm", extra_args=extra)


def test_the_plan_of_examples_gpu_yaml_shows_each_servers_vllm_dtype(data_dir):
    env = {**os.environ, "SELFLENGTHEN_DATA_DIR": str(data_dir.resolve())}
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "examples/gpu.yaml", "--plan", "--json"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    backends = {stage["name"]: stage["backend"] for stage in json.loads(result.stdout)["stages"]}
    assert backends["score/longbench_write/base"] == backends["score/longen/self_lengthen/iter_1/generator"] == "vllm serve --dtype bfloat16"
    assert backends["self_lengthen/iter_1/synthesis"] == "vllm serve --dtype bfloat16"
    assert backends["judge/longbench_write/base"].startswith("vllm serve --dtype float16")  # AWQ kernels compute in float16


def test_the_plan_label_names_the_dtype_only_for_vllm():
    assert server_label(ServerConfig(kind="vllm", dtype="float16")) == "vllm serve --dtype float16"
    assert server_label(ServerConfig(kind="transformers")) == "transformers serve"


def test_releasing_cuda_memory_before_a_server_starts_needs_no_torch_and_no_gpu():
    """On a machine or process without CUDA the release is a no-op that imports nothing."""
    code = ("import sys; from harness.serving.serve import release_cuda_cache; release_cuda_cache(); "
            "print('torch' in sys.modules); import torch; release_cuda_cache(); print(torch.cuda.is_initialized())")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False"]
