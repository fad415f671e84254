"""`server.data_parallel_size`: one `vllm serve --data-parallel-size N` per server, shown by `--plan`.

The command lines are built, not run (no GPU here): a stand-in `vllm` on PATH lets `server_command` find the
executable it would start. vLLM spreading the replicas over the GPUs is not exercised here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.errors import UserError
from harness.run.experiment_config import load_experiment
from harness.serving.serve import ServerConfig, server_command, server_label
from tests.test_harness_vllm_command import option, vllm_on_path  # noqa: F401 - vllm_on_path is a fixture

ROOT = Path(__file__).resolve().parent.parent


def test_vllm_runs_the_configured_number_of_replicas_behind_one_endpoint(vllm_on_path):
    config = ServerConfig(kind="vllm", data_parallel_size=4, lora_adapters={"generator": "/a/gen"})
    cmd = server_command("/ckpt/base", config, 8123)
    assert cmd[:3] == [vllm_on_path, "serve", "/ckpt/base"]
    assert option(cmd, "--data-parallel-size") == ["4"] and option(cmd, "--port") == ["8123"]
    assert "--enable-lora" in cmd  # both role adapters are served by every replica


def test_one_replica_adds_no_flag(vllm_on_path):
    assert "--data-parallel-size" not in server_command("/ckpt", ServerConfig(kind="vllm"), 8123)


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "2"])
def test_a_replica_count_that_is_not_a_whole_number_above_zero_is_refused(value):
    with pytest.raises(UserError, match="data_parallel_size must be a whole number of at least 1"):
        ServerConfig(kind="vllm", data_parallel_size=value)


@pytest.mark.parametrize("extra", [["--data-parallel-size", "2"], ["--data-parallel-size=2"], ["-dp", "2"]])
def test_data_parallelism_in_extra_args_is_refused_for_vllm(extra):
    with pytest.raises(UserError, match="set the server's data_parallel_size field instead"):
        ServerConfig(kind="vllm", extra_args=extra)


@pytest.mark.parametrize("section", ["eval", "judge", "backend"])
def test_other_server_kinds_refuse_data_parallel_size_by_name(section, tmp_path, data_dir):
    raw = yaml.safe_load((ROOT / "examples" / "tiny.yaml").read_text())
    raw["out_dir"] = str(tmp_path / "out")
    if section == "backend":
        raw["backend"] = {"kind": "endpoint", "server": {"kind": "transformers", "data_parallel_size": 2}}
    else:
        raw.setdefault(section, {}).setdefault("server", {})["data_parallel_size"] = 2
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(UserError, match=rf"{section}\.server\.data_parallel_size is only used by vllm servers"):
        load_experiment(path)


def test_the_plan_label_gives_the_replicas_of_a_vllm_server():
    assert server_label(ServerConfig(kind="vllm", data_parallel_size=8)) \
        == "vllm serve --dtype bfloat16 --data-parallel-size 8"
    assert server_label(ServerConfig(kind="vllm")) == "vllm serve --dtype bfloat16"


def test_the_plan_of_examples_gpu_node_yaml_shows_each_servers_replicas(data_dir):
    env = {**os.environ, "SELFLENGTHEN_DATA_DIR": str(data_dir.resolve())}
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "examples/gpu_node.yaml", "--plan", "--json"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    backends = {stage["name"]: stage["backend"] for stage in json.loads(result.stdout)["stages"]}
    assert backends["score/longbench_write/base"] == "vllm serve --dtype bfloat16 --data-parallel-size 8"
    assert backends["self_lengthen/iter_1/synthesis"] == "vllm serve --dtype bfloat16 --data-parallel-size 8"
    assert backends["judge/longbench_write/base"].startswith("vllm serve --dtype float16 --data-parallel-size 4")
