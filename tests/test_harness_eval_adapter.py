"""`selflengthen eval --adapter`: a LoRA adapter is evaluated on top of its base (merged into the run directory
first), as the CI profile's candidate may be one; what cannot work is refused before any work."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from harness.scoring.evaluate import EvalConfig, adapter_name, run_eval
from harness.serving.serve import ServerConfig
from tests.test_harness_cli_errors import assert_one_line_error, run_main
from tests.test_selflengthen_merge_dtype import random_adapter


def test_a_folder_without_an_adapter_config_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "not-an-adapter").mkdir()
    result = run_main(["eval", "--model", "smollm2-135m", "--adapter", "not-an-adapter", "--out", "out"],
                      capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, "eval.adapter: not-an-adapter is not a LoRA adapter folder (no adapter_config.json)")
    assert not (tmp_path / "out").exists()


def test_an_adapter_with_an_endpoint_is_refused_because_the_endpoint_serves_its_own_model(tmp_path, capsys,
                                                                                        monkeypatch):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    result = run_main(["eval", "--adapter", "adapter", "--endpoint", "http://127.0.0.1:9/v1", "--out", "out"],
                      capsys, monkeypatch, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_one_line_error(result, "eval.adapter is not used: answers come from http://127.0.0.1:9/v1")
    assert not (tmp_path / "out").exists()


def test_a_run_of_an_adapter_is_listed_under_its_folder_or_its_training_arm():
    assert adapter_name(Path("/x/train/self_lengthen/final/adapter")) == "final"
    assert adapter_name(Path("/x/my-lora")) == "my-lora"


@pytest.mark.slow
def test_an_adapter_is_merged_into_its_base_once_and_evaluated(tiny_model_dir, data_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    adapter = random_adapter(tiny_model_dir, tmp_path / "final" / "adapter")
    config = EvalConfig(model=str(tiny_model_dir), adapter=str(adapter), tasks=["longbench_write_en_mini"], limit=1,
                        max_gen_toks=4, server=ServerConfig(kind="inprocess"), data_dir=str(data_dir))
    out = tmp_path / "run"
    scores = run_eval(config, out, Console(file=io.StringIO()))
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["model"] == "final" and scores["model"] == "final"
    assert run["model_path"] == str(out / "merged_model") and run["adapter"] == str(adapter.resolve())
    assert run["base_model"] == str(tiny_model_dir)
    merged, base = load_file(out / "merged_model" / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    name = next(key for key in base if key.endswith("self_attn.q_proj.weight"))
    assert not torch.equal(merged[name].float(), base[name].float())  # the adapter's weights are in it
    merged_at = (out / "merged_model" / "model.safetensors").stat().st_mtime_ns
    run_eval(config, out, Console(file=io.StringIO()))  # a re-run resumes: no second merge
    assert (out / "merged_model" / "model.safetensors").stat().st_mtime_ns == merged_at
