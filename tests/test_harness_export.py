"""`selflengthen export`: every arm's and iteration's training data as a Parquet dataset `datasets` loads back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parent.parent


def write_rows(path: Path, count: int, tag: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"{tag} instruction {i}"},
                          {"role": "assistant", "content": f"{tag} answer {i} " + "word " * i}]} for i in range(count)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_marker(folder: Path, name: str, finished: bool = True, **inputs) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    marker = {"name": name, "fingerprint": "f", "inputs": {"kind": name.rsplit("/", 1)[-1], **inputs},
              "finished": finished, "seconds": 1.0}
    (folder / "stage.json").write_text(json.dumps(marker), encoding="utf-8")


# The files `selflengthen run` leaves in its out_dir (docs/run_directory.md), with these row counts.
COUNTS = {"self_lengthen_iter_1_generator": 3, "self_lengthen_iter_1_extender": 4,
          "self_lengthen_iter_2_generator": 2, "self_lengthen_iter_2_extender": 5, "self_lengthen_final": 6,
          "backtranslation": 7, "imitation": 0}


@pytest.fixture
def experiment(tmp_path) -> Path:
    out = tmp_path / "exp"
    method = out / "train" / "self_lengthen"
    for k in (1, 2):
        it = method / f"iter_{k}"
        write_marker(it, f"self_lengthen/iter_{k}/synthesis", model="base-model", seed=k,
                     settings={"sampling": {"temperature": 0.7, "stop": ["```", "\n---"]}})
        (it / "synthesis.json").write_text("{}")
        for role in ("generator", "extender"):
            write_rows(it / f"{role}_data.jsonl", COUNTS[f"self_lengthen_iter_{k}_{role}"], f"{role} {k}")
        write_rows(it / f"{role}_adapter" / "data_copy.jsonl", 1, "not data")  # an adapter's files are not data
    write_rows(method / "iter_1.stale" / "generator_data.jsonl", 9, "stale")
    write_marker(method / "final", "self_lengthen/final/data", seed=1, settings={"min_words": 100})
    write_rows(method / "final" / "final_data.jsonl", COUNTS["self_lengthen_final"], "final")
    for arm in ("backtranslation", "imitation"):
        write_marker(out / "train" / arm, f"{arm}/data", model="base-model", settings={"max_documents": 7})
        write_rows(out / "train" / arm / "data.jsonl", COUNTS[arm], arm)
    (out / "experiment.json").write_text("{}")
    return out


def load(folder: Path, cache: Path):
    import datasets

    return datasets.load_dataset(str(folder), cache_dir=str(cache))


def test_export_writes_one_split_per_arm_and_iteration_that_datasets_loads_back(experiment, tmp_path):
    assert main(["export", str(experiment), "--out", str(tmp_path / "dataset")]) == 0
    loaded = load(tmp_path / "dataset", tmp_path / "cache")
    assert {name: split.num_rows for name, split in loaded.items()} == {k: v for k, v in COUNTS.items() if v}
    first = loaded["self_lengthen_iter_2_extender"][1]["messages"]
    assert first == [{"role": "user", "content": "extender 2 instruction 1"},
                     {"role": "assistant", "content": "extender 2 answer 1 word "}]


def test_each_parquet_file_loads_alone_with_the_parquet_builder(experiment, tmp_path):
    import datasets

    main(["export", str(experiment), "--out", str(tmp_path / "dataset")])
    files = {"final": str(tmp_path / "dataset" / "data" / "self_lengthen_final.parquet"),
             "bt": str(tmp_path / "dataset" / "data" / "backtranslation.parquet")}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert (loaded["final"].num_rows, loaded["bt"].num_rows) == (6, 7)


def test_the_card_gives_every_split_its_count_and_its_stage_settings(experiment, tmp_path):
    main(["export", str(experiment), "--out", str(tmp_path / "dataset")])
    card = (tmp_path / "dataset" / "README.md").read_text(encoding="utf-8")
    summary = json.loads((tmp_path / "dataset" / "export.json").read_text(encoding="utf-8"))
    assert {s["split"]: s["rows"] for s in summary["splits"]} == COUNTS
    assert "| self_lengthen_iter_2_extender | 5 | self_lengthen | 2 | extender |" in card
    assert "| imitation | 0 |" in card and "have no file" in card
    assert '"max_documents": 7' in card
    assert "````json" in card  # a stop marker of three backticks cannot close the settings block


def test_an_unfinished_stage_is_left_out_and_the_card_says_why(experiment, tmp_path):
    write_marker(experiment / "train" / "backtranslation", "backtranslation/data", finished=False)
    main(["export", str(experiment), "--out", str(tmp_path / "dataset")])
    summary = json.loads((tmp_path / "dataset" / "export.json").read_text(encoding="utf-8"))
    assert "backtranslation" not in [s["split"] for s in summary["splits"]]
    assert summary["skipped"][0]["file"] == "train/backtranslation/data.jsonl"
    assert "has not finished" in (tmp_path / "dataset" / "README.md").read_text(encoding="utf-8")


def test_a_train_work_dir_exports_its_iterations_and_final_data(experiment, tmp_path):
    work = experiment / "train" / "self_lengthen"  # `selflengthen train` writes iter_k/ and final/ in its work_dir
    main(["export", str(work), "--out", str(tmp_path / "dataset")])
    loaded = load(tmp_path / "dataset", tmp_path / "cache")
    assert sorted(loaded) == sorted(k for k in COUNTS if k.startswith("self_lengthen"))


def test_exporting_again_replaces_the_previous_export(experiment, tmp_path):
    out = tmp_path / "dataset"
    main(["export", str(experiment), "--out", str(out)])
    (experiment / "train" / "self_lengthen" / "iter_2" / "extender_data.jsonl").unlink()
    assert main(["export", str(experiment), "--out", str(out)]) == 0
    assert not (out / "data" / "self_lengthen_iter_2_extender.parquet").exists()
    assert "self_lengthen_iter_2_extender" not in load(out, tmp_path / "cache")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_an_export_killed_outright_leaves_hidden_folders_that_the_next_export_removes(experiment, tmp_path):
    """SIGKILL cannot be held like Ctrl-C: its staging or old folder stays until the next export to that folder."""
    out = tmp_path / "dataset"
    for leftover in (".dataset.0badc0de.tmp", ".dataset.c0ffee00.old"):
        (tmp_path / leftover / "data").mkdir(parents=True)
    (tmp_path / ".dataset.notes").write_text("a user's file", encoding="utf-8")
    assert main(["export", str(experiment), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".dataset.notes"]


def interrupt_after(monkeypatch, owner, name: str, when=lambda *args: True) -> None:
    """Ctrl-C (a real SIGINT to this process) right after the first call of `owner.name` that `when` accepts."""
    original = getattr(owner, name)
    calls = []

    def interrupted(*args, **kwargs):
        result = original(*args, **kwargs)
        if not calls and when(*args):
            calls.append(args)
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(owner, name, interrupted)


@pytest.mark.parametrize("moment", ["writing", "swapping"])
def test_ctrl_c_during_an_export_leaves_one_whole_export_and_no_hidden_folder(moment, experiment, tmp_path, monkeypatch):
    import harness.run.export

    out = tmp_path / "dataset"
    assert main(["export", str(experiment), "--out", str(out)]) == 0
    before = json.loads((out / "export.json").read_text(encoding="utf-8"))
    if moment == "writing":  # after the first Parquet file
        interrupt_after(monkeypatch, harness.run.export, "_write_parquet")
    else:  # after the previous export is moved aside, before the new one takes its place
        interrupt_after(monkeypatch, os, "replace", when=lambda source, target: Path(source) == out)
    assert main(["export", str(experiment), "--out", str(out)]) == 130
    assert json.loads((out / "export.json").read_text(encoding="utf-8"))["splits"] == before["splits"]
    assert sorted(load(out, tmp_path / "cache")) == sorted(k for k, v in COUNTS.items() if v)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging or old folder left


@pytest.mark.parametrize("case, expected", [
    ("missing", "is not a folder"),
    ("nothing", "holds no finished training data"),
    ("all_empty", "holds no training example"),
    ("out_is_file", "is a file"),
    ("out_holds_other_files", "holds other files"),
    ("bad_row", "line 2: not a training row"),
    ("bad_json", "line 1: malformed JSON"),
    ("two_folders_for_one_iteration", "iter_01 and iter_1 are both iteration 1"),
])
def test_unusable_input_is_one_error_line_and_exit_2_with_nothing_written(case, expected, experiment, tmp_path,
                                                                            capsys):
    work, out = experiment, tmp_path / "dataset"
    data = experiment / "train" / "backtranslation" / "data.jsonl"
    if case == "missing":
        work = tmp_path / "absent"
    elif case == "nothing":
        work = tmp_path / "empty_work"
        (work / "iter_1").mkdir(parents=True)
    elif case == "all_empty":
        for path in experiment.rglob("*data.jsonl"):
            path.write_text("")
    elif case == "out_is_file":
        out.write_text("x")
    elif case == "out_holds_other_files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "two_folders_for_one_iteration":  # else two splits named self_lengthen_iter_1_generator
        shutil.copytree(experiment / "train" / "self_lengthen" / "iter_1", experiment / "train" / "self_lengthen" / "iter_01")
    elif case == "bad_row":
        data.write_text(data.read_text().splitlines()[0] + '\n{"messages": [{"role": "user"}]}\n')
    else:
        data.write_text("{not json\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", str(work), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in " ".join(err.split()), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no dataset, no staging folder
    if case == "out_holds_other_files":
        assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_the_export_subcommand_is_on_the_command_line(experiment, tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness.cli", "export", str(experiment), "--out",
                             str(tmp_path / "dataset")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wrote 27 rows in 7 splits" in " ".join(result.stderr.split())


@pytest.mark.slow
def test_export_of_the_finished_tiny_experiment_loads_back_with_its_row_counts(finished_experiment, tmp_path):
    exp = finished_experiment / "exp"
    assert main(["export", str(exp), "--out", str(tmp_path / "dataset")]) == 0
    expected = {"self_lengthen_iter_1_generator": exp / "train/self_lengthen/iter_1/generator_data.jsonl",
                "self_lengthen_iter_1_extender": exp / "train/self_lengthen/iter_1/extender_data.jsonl",
                "self_lengthen_final": exp / "train/self_lengthen/final/final_data.jsonl",
                "backtranslation": exp / "train/backtranslation/data.jsonl",
                "imitation": exp / "train/imitation/data.jsonl"}
    counts = {name: sum(1 for line in path.open(encoding="utf-8") if line.strip()) for name, path in expected.items()}
    loaded = load(tmp_path / "dataset", tmp_path / "cache")
    assert {name: split.num_rows for name, split in loaded.items()} == {k: v for k, v in counts.items() if v}
    assert sum(counts.values()) > 0
