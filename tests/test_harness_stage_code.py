"""A stage's code version follows the modules it runs and what they import, not whole packages (#37)."""

from __future__ import annotations

import pytest

from harness.run import stages
from harness.run.baselines import BASELINE_TRAIN_CODE
from harness.run.stages import _PROJECT, _assets_beside, _module_closure, code_version
from harness.run.train import FINAL_DATA_CODE, SYNTHESIS_CODE, TRAIN_CODE


def files(modules: tuple[str, ...]) -> set[str]:
    closure = _module_closure(modules)
    return {str(path.relative_to(_PROJECT)) for path in closure | _assets_beside(closure)}


def test_the_final_data_code_reaches_only_the_final_data_stage():
    assert "selflengthen/final_data.py" in files(FINAL_DATA_CODE)
    for other in (SYNTHESIS_CODE, TRAIN_CODE, BASELINE_TRAIN_CODE, ("selflengthen.baselines.backtranslation",),
                  ("selflengthen.baselines.imitation",)):
        assert "selflengthen/final_data.py" not in files(other), other


def test_a_stage_follows_its_imports_through_the_packages_inits_and_reads_the_prompts_beside_them():
    synthesis = files(SYNTHESIS_CODE)
    # pipeline -> extender -> filters (module level); __init__ of every package on the way; prompts beside them
    assert {"selflengthen/pipeline.py", "selflengthen/extender.py", "selflengthen/filters.py",
            "selflengthen/__init__.py", "infra/__init__.py", "selflengthen/prompts/en/extend.txt"} <= synthesis
    # the method counts words as LonGen does, but none of the scoring beyond that reaches it
    assert "tasks/longen_rules.py" in synthesis and "tasks/scoring.py" not in synthesis
    assert not any(name.startswith("harness/") for name in synthesis)


def test_merging_reaches_the_training_stages_and_not_synthesis():
    assert "selflengthen/merge.py" in files(TRAIN_CODE) and "selflengthen/merge.py" in files(BASELINE_TRAIN_CODE)
    assert "selflengthen/merge.py" not in files(SYNTHESIS_CODE)


def test_a_relative_import_in_a_stages_code_is_refused_naming_the_file_and_line(tmp_path, monkeypatch):
    # a project whose method package imports a sibling relatively: the fingerprint would not follow it
    (tmp_path / "selflengthen").mkdir()
    (tmp_path / "selflengthen" / "__init__.py").write_text("")
    (tmp_path / "selflengthen" / "filters.py").write_text("")
    (tmp_path / "selflengthen" / "relative_step.py").write_text('"""A step."""\n\nfrom . import filters\n')
    monkeypatch.setattr(stages, "_PROJECT", tmp_path)
    with pytest.raises(RuntimeError, match=r"relative_step\.py line 3: a relative import"):
        code_version("selflengthen.relative_step")
