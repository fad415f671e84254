"""Executing a graph of stages: the stale ones cleared, then each stage not done run in order, after its upstream.

`selflengthen run` executes the experiment's graph (`harness.run.plan.plan_stages`), `selflengthen train` the
Self-Lengthen stages alone; `--plan` prints the same objects' status, so what runs is what the plan shows.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from harness.run.stages import DONE, Stage, clear_stale, recorded


def execute(stages: list[Stage], console: Console) -> dict[str, str]:
    """Run every stage of `stages` (in upstream-first order) that is not done; returns what was skipped and why.

    A stage whose `skip` gives a reason is skipped, and so is every stage downstream of a skipped one (but for
    those that run with what exists, `after_skipped`); the first reason given for a `what` is the one kept.
    Stages sharing one `run` are run by one call, when the first of them is reached; a done stage runs again
    only when it asks to run every time.
    """
    clear_stale(stages, console)
    skipped: set[str] = set()
    reasons: dict[str, str] = {}
    handled: set[str] = set()
    for stage in stages:
        if stage.name in handled:
            continue
        batch = [stage] if stage.run is None else [s for s in stages if s.run is stage.run and s.name not in handled]
        todo = []
        for member in batch:
            handled.add(member.name)
            reason = member.skip() if member.skip else None
            if reason is not None:
                what, why = reason
                if what not in reasons:
                    reasons[what] = why
                    console.print(f"[yellow]{escape(what)} skipped:[/] {escape(why)}")
            if reason is not None or (not member.after_skipped and
                                      any(up is not None and up.name in skipped for up in member.upstream)):
                skipped.add(member.name)
            elif member.status != DONE or member.every_time:
                _require_upstream_done(member, skipped)
                todo.append(member)
        if todo:
            if stage.run is None:
                raise RuntimeError(f"stage {stage.name} is not done and has nothing to run it")
            with recorded(todo):
                stage.run(todo, console)
            _require_done(todo)
    return reasons


def _require_done(stages: list[Stage]) -> None:
    """A stage that ran must have written what it declares (its entries): else its downstream would read nothing."""
    for stage in stages:
        missing = [entry for entry in stage.entries if not entry.exists()]
        if missing:
            raise RuntimeError(f"stage {stage.name} ran but {missing[0].file} holds no {'/'.join(missing[0].keys)}: "
                               "its run did not write what the stage declares")


def _require_upstream_done(stage: Stage, skipped: set[str]) -> None:
    """A stage about to run reads its upstream's outputs: each must be done (or skipped, where it runs anyway)."""
    for up in stage.upstream:
        if up is not None and up.name not in skipped and up.status != DONE:
            raise RuntimeError(f"stage {stage.name} would run before its upstream {up.name} is done "
                               f"({up.status}): the graph lists them out of order")
