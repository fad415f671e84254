"""Hostile text and a leaderboard with it in every string a view shows, for the escaping tests.

``leaderboard_with`` builds a leaderboard from run directories with a payload in every text field (model,
arm, task, metric and sample-type names, training-fact names, doc_ids, prompts, answers, and in
judgements.json's trust: sanity degradation names, which end up in the reasons, and unreliable_reasons),
then puts more into leaderboard.json's own strings (created, base, method, a judge-trust reason, and an
iteration that is a string).
"""

from __future__ import annotations

import json
from pathlib import Path

from leaderboard.board import load_leaderboard
from leaderboard.publish import publish

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</script>", "javascript:alert(1)",
            "<svg onload=alert(1)>", "<img src=x onerror=\"document.body.dataset.pwned='yes'\">"]
MARKDOWN_PAYLOADS = ["**bold** _em_ `code`", "[link](javascript:alert(1))", "a | b", "~~gone~~", "&lt;b&gt;"]


class Texts:
    """Hands out the strings of one leaderboard: payloads in turn (with a number, to keep names unique) or plain words."""

    def __init__(self, payloads: list[str] | None):
        self.payloads, self.used = payloads, 0

    def __call__(self) -> str:
        self.used += 1
        if self.payloads is None:
            return f"plain{self.used}"
        return self.payloads[(self.used - 1) % len(self.payloads)] + (f" {self.used}" if self.used > len(
            self.payloads) else "")


def judge_trust(texts: Texts, failing: bool) -> dict:
    """A judges-style trust whose one degradation is named by ``texts``: failing, its name lands in the reason;
    passing, the file's own unreliable_reasons (also from ``texts``) are the reasons shown."""
    p_value = 0.6 if failing else 0.001
    sanity = {texts(): {"rate": 0.5 if failing else 0.95, "ci": [0.2, 0.8], "p_value": p_value,
                        "above_chance": not failing, "n": 5}}
    return {"failures": {"count": 0, "rate": 0.0}, "sanity": sanity, "agreement": None, "reliable": False,
            "unreliable_reasons": [texts()]}


def write_run(root: Path, texts: Texts, model: str, iteration, reach: float, tasks: list[str]) -> Path:
    """A run directory whose every shown string comes from ``texts``; numbers are small and realistic."""
    out = root / f"run{len(list(root.iterdir()))}"
    out.mkdir()
    scores, judged = {}, {}
    kind = texts()
    for task in tasks:
        samples = []
        for i, demand in enumerate([300, 800, 1500, 3000, 5000]):
            words = int(250 * (demand / 250) ** reach) + 7 * i
            samples.append({"doc_id": i if i else texts(), "prompt": texts(), "response": texts(), "words": words,
                            "required_words": demand, "type": kind, "score": round(100 * min(words, demand) / demand, 1)})
        mean = sum(s["score"] for s in samples) / len(samples)
        scores[task] = {"n": len(samples), "S_l": mean, kind: mean, "samples": samples}
        judged[task] = {"failures": 0, "samples": [{"doc_id": s["doc_id"], "quality": 40 + 0.005 * s["words"] + i,
                                                    "error": None} for i, s in enumerate(samples)],
                        "trust": judge_trust(texts, failing=task == tasks[0])}
    run = {"model": model, "model_path": texts(), "arm": texts(), "iteration": iteration,
           "train_stats": {texts(): 480, texts(): 610.5}}
    for name, value in (("run.json", run), ("scores.json", {"tasks": scores}), ("judgements.json", {"tasks": judged})):
        (out / name).write_text(json.dumps(value), encoding="utf-8")
    return out


def leaderboard_with(payloads: list[str] | None, root: Path) -> tuple[Path, dict]:
    """Publish three runs and add leaderboard-only strings; returns the published HTML and the edited board."""
    texts = Texts(payloads)
    (root / "runs").mkdir(parents=True)
    tasks = [texts(), texts()]
    models = [texts() for _ in range(3)]
    runs = [write_run(root / "runs", texts, model, iteration, reach, tasks)
            for model, iteration, reach in zip(models, (None, 1, 2), (0.0, 0.5, 0.8))]
    paths = publish(runs, models[0], root / "out")
    board = load_leaderboard(paths["json"])
    board |= {"created": texts(), "base": texts(), "method": {texts(): texts()}}
    board["rows"][1]["tasks"][tasks[0]]["quality_trust"]["reasons"].append(texts())
    for row in (board["rows"][0], board["rows"][2]):  # leaderboard.json refuses this; the views must still escape it
        row["iteration"] = texts()
    return paths["html"], board


def trust_strings(board: dict) -> list[str]:
    """Every judge-trust string of a board: the reasons and the sanity degradation names."""
    trusts = [entry["quality_trust"] for row in board["rows"] for entry in row["tasks"].values()]
    return [text for trust in trusts if trust for text in trust["reasons"] + list(trust["sanity"] or {})]
