"""leaderboard.html: one self-contained page (inline CSS, JS and SVG; no external URL) read from leaderboard.json.

Sortable tables (click a header; per task also its scores by demand range and, where the pairwise judge ran,
its win rates), three figures drawn by leaderboard/svg.py — demanded vs. produced
length, scores per Self-Lengthen iteration, quality vs. length — one sample answer per model, and the
method. All model text is HTML-escaped; answers sit in read-only textareas.
"""

from __future__ import annotations

import math
from html import escape

from leaderboard.format import (
    DEGENERATION_LEGEND,
    DEMAND_LEGEND,
    LEGEND,
    PAIRWISE_COLUMNS,
    PAIRWISE_LEGEND,
    SHARES,
    TONE_LEGEND,
    TRUST_COLUMNS,
    TRUST_LEGEND,
    UNRELIABLE,
    UNRELIABLE_MARK,
    VERDICT,
    agreement_text,
    arrow,
    demand_metrics,
    fact_text,
    failures_text,
    interval,
    iteration,
    iteration_number,
    judged,
    label,
    marker,
    number,
    pairwise_references,
    pairwise_rows,
    pairwise_texts,
    range_sizes,
    reason_notes,
    sanity_parts,
    sanity_text,
    task_metrics,
    tone,
    train_stat_keys,
    unreliable_metric,
    value_text,
    verdict_short,
)
from leaderboard.svg import PALETTE, Chart, padded_range
from leaderboard.trust import task_trust
from leaderboard.validate import is_number

STYLE = """
body{font-family:"Latin Modern Roman","Computer Modern",Georgia,"Times New Roman",serif;margin:2em auto;
max-width:1320px;color:#111;padding:0 1em;line-height:1.4}
h1{font-size:1.7em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ccc}
.meta,.legend-text,.caption{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-variant-numeric:tabular-nums;font-size:.92em}
thead th{border-top:2px solid #111;border-bottom:1px solid #111;padding:.35em .5em;cursor:pointer;
user-select:none;text-align:right;vertical-align:bottom;min-width:3em;max-width:7em}
thead th:first-child,tbody td:first-child,td.text,th.text{text-align:left}
th[data-dir=asc]::after{content:" \\25B2";font-size:.7em}th[data-dir=desc]::after{content:" \\25BC";font-size:.7em}
tbody td{padding:.3em .5em;text-align:right;white-space:nowrap}tbody tr:last-child td{border-bottom:2px solid #111}
tr.base td{background:#f3f3f3}.ci{color:#777;font-size:.82em}.up{color:#1a7f37}.down{color:#b42318}
.sig{font-size:.8em;margin-left:.2em;cursor:help}.unreliable{color:#b54708;font-size:.8em;margin-left:.2em}
td.wrap{white-space:normal;min-width:16em;max-width:32em}.figures{display:flex;flex-wrap:wrap;gap:18px}
svg text{font-family:inherit;font-size:11px;fill:#222}svg .title{font-size:13px;font-weight:bold}
svg .label{font-size:12px}svg .legend{font-size:11px}svg .note{fill:#777;font-size:13px}
svg .grid{stroke:#e6e6e6}svg .legend-box{fill:#fff;fill-opacity:.85;stroke:#ccc}svg .frame{fill:none;stroke:#444}
details{margin:.4em 0}summary{cursor:pointer}.prompt{color:#444;font-style:italic;margin:.3em 0}
textarea{width:100%;height:9em;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var dir = th.dataset.dir === "desc" ? "asc" : "desc";
      table.querySelectorAll("thead th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var key = function (row) {
        var cell = row.cells[column], v = cell.dataset.v;
        return v !== undefined && v !== "" ? parseFloat(v) : cell.textContent.trim();
      };
      var body = table.tBodies[0];
      Array.from(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return dir === "asc" ? c : -c;
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
document.body.dataset.sortable = "ready";
"""


TONES = {"better": "up", "worse": "down", None: "plain"}


def _colors(board: dict) -> dict[str, str]:
    return {row["id"]: PALETTE[i % len(PALETTE)] for i, row in enumerate(board["rows"])}


def _td(text: str, value=None, css: str = "") -> str:
    """A cell of already-escaped ``text``; ``value`` is the number the column sorts by (anything else is dropped)."""
    sort_value = f' data-v="{escape(repr(value))}"' if is_number(value) else ""
    css_class = f' class="{css}"' if css else ""
    return f"<td{sort_value}{css_class}>{text}</td>"


def _metric_td(entry: dict, metric: str) -> str:
    """The value with ▲/▼ (its p-value on hover) and ⚠ for an unreliable judge, the interval small beneath it:
    two short lines, so a task's columns fit the page."""
    spec = entry["metrics"].get(metric)
    if spec is None:
        return _td("–")
    text = escape(value_text(spec, spec["value"]))
    if arrow(spec):
        hover = f"{marker(spec)}, paired Wilcoxon vs. the base model"
        text += f' <span class="sig {TONES[tone(spec)]}" title="{escape(hover)}">{escape(arrow(spec))}</span>'
    if unreliable_metric(entry, metric):
        text += f' <span class="unreliable" title="see the judge verdict">{escape(UNRELIABLE_MARK)}</span>'
    if interval(spec):
        text += f'<br><span class="ci">{escape(interval(spec))}</span>'
    return _td(text, spec["value"])


def _verdict_td(entry: dict, notes: list[str]) -> str:
    """'reliable', or 'unreliable (1, 2)' pointing to the reasons listed once under the table."""
    trust = task_trust(entry)
    verdict = escape(verdict_short(trust, notes))
    if trust is not None and not trust["reliable"]:
        verdict = f'<span class="unreliable">{verdict}</span>'
    return _td(verdict, css="text")


def _trust_tds(entry: dict) -> list[str]:
    """Failures (sorted by rate), sanity rates (failing ones in red) and agreement.
    Degradation names come from judgements.json: escaped like every other text."""
    trust = task_trust(entry)
    parts = sanity_parts(trust)
    sanity = ", ".join(escape(part) if passed else f'<span class="down">{escape(part)} ✗</span>'
                       for part, passed in parts) or escape(sanity_text(trust))
    return [_td(escape(failures_text(trust)), (trust or {}).get("failures_rate")),
            _td(sanity, css="text wrap"), _td(escape(agreement_text(trust)), css="text")]


def _model_td(row: dict) -> str:
    return _td(escape(row["model"]) + (" <em>(base)</em>" if row.get("is_base") else ""), css="text")


def _table(header: list[str], rows: list[str], css: str = "sortable", text: tuple[int, ...] = (0, 1)) -> str:
    """A sortable table; the headers of the ``text`` columns are left-aligned like their cells."""
    head = "".join(f'<th{" class=text" if i in text else ""}>{escape(h)}</th>' for i, h in enumerate(header))
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _judge_section(board: dict, task: str) -> str:
    """The judge's reasons, once per task (judgements.json text, escaped), and its failures, sanity and agreement."""
    notes = reason_notes(board, task)
    reasons = "".join(f"<li>{escape(note)}</li>" for note in notes)
    listed = f'<p class="caption">Judge unreliable because:</p><ol class="reasons">{reasons}</ol>' if notes else ""
    rows = []
    for row in board["rows"]:
        if task in row["tasks"]:
            rows.append(f"<tr>{_model_td(row)}{''.join(_trust_tds(row['tasks'][task]))}</tr>")
    return (f'{listed}<p class="caption">Judge of the quality columns:</p>'
            + _table(["model", *TRUST_COLUMNS], rows, css="sortable judge", text=(0, 2, 3)))


def _demand_table(board: dict, task: str) -> str:
    """The task's primary score and mean words per demand range, each with its interval and test vs. the base."""
    metrics = demand_metrics(board, task)
    if not metrics:
        return ""
    rows = [f'<tr class="{"base" if row.get("is_base") else ""}">{_model_td(row)}'
            f'{"".join(_metric_td(row["tasks"][task], m) for m in metrics)}</tr>'
            for row in board["rows"] if task in row["tasks"]]
    caption = f'<p class="caption">By demanded length ({escape(range_sizes(board, task))}):</p>'
    return caption + _table(["model"] + [label(m) for m in metrics], rows, css="sortable demand", text=(0,))


def _pairwise_table(board: dict, task: str) -> str:
    """The pairwise judge's win rates of the rows it compared with the reference model on the task."""
    pairs = pairwise_rows(board, task)
    if not pairs:
        return ""
    rows = []
    for row, entry in pairs:
        sort_values = (entry.get("win_rate"), entry.get("lc_win_rate"), None, entry.get("position_bias_rate"))
        cells = "".join(_td(escape(text), value) for text, value in zip(pairwise_texts(entry), sort_values))
        rows.append(f"<tr>{_model_td(row)}{cells}</tr>")
    caption = f'<p class="caption">Pairwise judge, {escape(pairwise_references(board, task))}:</p>'
    return caption + _table(["model", *PAIRWISE_COLUMNS], rows, css="sortable pairwise", text=(0,))


def _task_table(board: dict, task: str) -> str:
    metrics = task_metrics(board, task)
    has_judge = judged(board, task)
    notes = reason_notes(board, task)
    header = ["model", "arm", "iter", "n"] + [label(m) for m in metrics] + [VERDICT] * has_judge
    rows = []
    for row in board["rows"]:
        entry = row["tasks"].get(task)
        if entry is None:
            continue
        cells = [_model_td(row), _td(escape(row.get("arm") or "–"), css="text"),
                 _td(escape(iteration(row)), row.get("iteration") if row.get("iteration") is not None else -1),
                 _td(escape(str(entry["n"])), entry["n"])]
        cells += [_metric_td(entry, m) for m in metrics]
        cells += [_verdict_td(entry, notes)] * has_judge
        rows.append(f'<tr class="{"base" if row.get("is_base") else ""}">{"".join(cells)}</tr>')
    table = _table(header, rows, text=(0, 1, len(header) - 1) if has_judge else (0, 1))
    return (f"<h2>{escape(task)}</h2>" + table + (_judge_section(board, task) if has_judge else "")
            + _demand_table(board, task) + _pairwise_table(board, task))


def _training_table(board: dict) -> str:
    keys = train_stat_keys(board)
    if not keys:
        return ""
    rows = []
    for row in board["rows"]:
        stats = row.get("train_stats")
        if not stats:
            continue
        cells = [_td(escape(row["model"]), css="text"), _td(escape(row.get("arm") or "–"), css="text"),
                 _td(escape(iteration(row)), row.get("iteration"))]
        cells += [_td(escape(fact_text(stats.get(k))), stats.get(k)) for k in keys]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return "<h2>Training data per arm</h2>" + _table(["model", "arm", "iter"] + [label(k) for k in keys], rows)


def length_following_chart(board: dict) -> str:
    """Figure 1: demanded vs. produced words, one point per sample, log-log, with the line y = x."""
    colors = _colors(board)
    points = [(row, task, s) for row in board["rows"] for task, entry in row["tasks"].items()
              for s in entry["samples"]
              if isinstance(s.get("required_words"), (int, float)) and s["required_words"] > 0
              and isinstance(s.get("words"), (int, float))]
    values = [s["required_words"] for *_, s in points] + [max(s["words"], 1) for *_, s in points]
    bounds = padded_range(values, log=True)
    chart = Chart("Demanded vs. produced length", "demanded words", "produced words", bounds, bounds,
                  x_log=True, y_log=True, width=560, height=460, css_class="chart length-following")
    if not points:
        chart.note("no sample has a demanded length")
        return chart.render()
    chart.line([(bounds[0], bounds[0]), (bounds[1], bounds[1])], "#888", dashed=True,
               width=1.2)
    for row, task, s in points:
        chart.point(s["required_words"], max(s["words"], 1), colors[row["id"]],
                    f"{row['model']} · {task} #{s['doc_id']}: {s['required_words']:g} → {s['words']:g} words")
    for row in board["rows"]:
        chart.add_legend(row["model"], colors[row["id"]])
    return chart.render()


def _iteration_series(board: dict) -> dict[str, list[dict]]:
    """Rows per training arm ordered by iteration, each starting from the base model at iteration 0."""
    base = [row for row in board["rows"] if row.get("is_base")]
    series: dict[str, list[dict]] = {}
    for row in board["rows"]:
        if iteration_number(row) is not None and not row.get("is_base"):
            series.setdefault(row.get("arm") or "–", []).append(row)
    return {arm: base + sorted(rows, key=iteration_number) for arm, rows in series.items()}


def _metric_of(row: dict, task: str, metric: str) -> dict | None:
    spec = row["tasks"].get(task, {}).get("metrics", {}).get(metric)
    return spec if spec and spec["value"] is not None else None


def iteration_charts(board: dict) -> list[str]:
    """Figure 2: per task, the length score and mean output words per Self-Lengthen iteration (95% CI).

    Arms without iterations (e.g. backtranslation) are dashed horizontal references.
    """
    series = _iteration_series(board)
    if not series:
        return []
    references = [row for row in board["rows"] if iteration_number(row) is None and not row.get("is_base")]
    last = max([iteration_number(row) or 0 for rows in series.values() for row in rows] + [1])
    charts = []
    for task in board["tasks"]:
        primary = next((row["tasks"][task].get("primary") for row in board["rows"] if task in row["tasks"]), None)
        for metric, log in ((primary, False), ("words", True)):
            if metric is None:
                continue
            lines = [(arm, [(iteration_number(row) or 0, _metric_of(row, task, metric)) for row in rows])
                     for arm, rows in series.items()]
            lines = [(arm, [(x, spec) for x, spec in points if spec]) for arm, points in lines]
            flat = [(row, _metric_of(row, task, metric)) for row in references if _metric_of(row, task, metric)]
            values = [v for _, points in lines for _, spec in points for v in [spec["value"], *(spec["ci"] or [])]]
            values += [spec["value"] for _, spec in flat]
            chart = Chart(f"{task}: {label(metric)}", "Self-Lengthen iteration (0 = base)", label(metric),
                          (-0.3, last + 0.3), padded_range(values, log=log, floor=0.0), y_log=log,
                          width=400, height=300, css_class="chart iterations")
            for i, (arm, points) in enumerate(lines):
                color = PALETTE[i % len(PALETTE)]
                chart.line([(x, spec["value"]) for x, spec in points], color)
                for x, spec in points:
                    if spec["ci"]:
                        chart.error_bar(x, spec["ci"][0], spec["ci"][1], color)
                    chart.point(x, spec["value"], color,
                                f"{arm} iteration {x}: {number(spec['value'])} {interval(spec)}", radius=3.5, opacity=1)
                chart.add_legend(arm, color)
            for j, (row, spec) in enumerate(flat):
                color = PALETTE[(len(lines) + j) % len(PALETTE)]
                chart.line([(-0.3, spec["value"]), (last + 0.3, spec["value"])], color, dashed=True, width=1.4)
                chart.add_legend(f"{row['model']} (no iterations)", color)
            charts.append(chart.render())
    return charts


def quality_charts(board: dict) -> list[str]:
    """Figure 3: judge quality vs. output length per sample, with the fitted per-model lines of length control;
    a model whose judge is unreliable on the task is marked so in the legend."""
    colors = _colors(board)
    charts = []
    for task, fit in board.get("length_control", {}).items():
        rows = [r for r in board["rows"] if any(s.get("quality") is not None for s in r["tasks"].get(task, {}).get(
            "samples", []))]
        points = [(r, s) for r in rows for s in r["tasks"][task]["samples"]
                  if s.get("quality") is not None and isinstance(s.get("words"), (int, float))]
        x_bounds = padded_range([max(s["words"], 1) for _, s in points], log=True)
        y_bounds = padded_range([s["quality"] for _, s in points], log=False)
        chart = Chart(f"{task}: quality vs. length", "output words", "judge quality", x_bounds, y_bounds,
                      x_log=True, width=560, height=420, css_class="chart quality-length")
        chart.line([(fit["common_words"], y_bounds[0]), (fit["common_words"], y_bounds[1])], "#888", dashed=True,
                   width=1.0)
        for row, s in points:
            chart.point(max(s["words"], 1), s["quality"], colors[row["id"]],
                        f"{row['model']} #{s['doc_id']}: {s['words']:g} words, quality {s['quality']:.1f}",
                        opacity=0.55)
        for row in rows:
            words = [max(s["words"], 1) for r, s in points if r is row]  # as plotted: 0 words at 1 (log axis)
            intercept = fit["intercepts"].get(row["id"])
            if intercept is None or not words:
                continue
            grid = [min(words) * (max(words) / min(words)) ** (i / 20) for i in range(21)]
            chart.line([(w, intercept + fit["slope"] * math.log(w + 1)) for w in grid], colors[row["id"]])
            marked = f" {UNRELIABLE}" if unreliable_metric(row["tasks"][task], "quality") else ""
            chart.add_legend(row["model"] + marked, colors[row["id"]])
        charts.append(chart.render())
    return charts


def _examples(board: dict) -> str:
    parts = []
    for row in board["rows"]:
        for task, entry in row["tasks"].items():
            example = entry.get("example")
            if not example:
                continue
            title = f"{row['model']} · {task} · doc {example['doc_id']}"
            parts.append(f"<details><summary>{escape(title)}</summary>"
                         f"<p class=\"prompt\">{escape(example['prompt'])}</p>"
                         f"<textarea readonly>{escape(example['response'])}</textarea></details>")
    return "<h2>Sample answers</h2>" + "".join(parts) if parts else ""


def _method(board: dict) -> str:
    items = "".join(f"<li><b>{escape(name)}</b>: {escape(text)}</li>" for name, text in board.get("method", {}).items())
    fits = "".join(f"<li>{escape(task)}: slope {fit['slope']:.2f} quality points per unit of log(words+1); "
                   f"common length {fit['common_words']:.0f} words</li>"
                   for task, fit in board.get("length_control", {}).items())
    return (
        "<h2>Method</h2><p>Every number is the mean over a benchmark's samples with its 95% confidence interval. "
        "Rows are compared with the base model prompt by prompt. Judges prefer longer answers, so judge quality "
        "is also reported <em>length-controlled</em>: all (model, sample) points are pooled, quality is regressed "
        "on log(words + 1) with one intercept per model (ordinary least squares), and each model's predicted "
        "quality at the median log length of all samples is reported with its OLS interval.</p>"
        f"<ul>{items}{fits}</ul>"
    )


def render_html(board: dict) -> str:
    """The whole leaderboard as one self-contained HTML page."""
    base = f"base model: {escape(board['base'])}" if board.get("base") else "no base model"
    any_judged = any(judged(board, task) for task in board["tasks"])
    trust_legend = f'<p class="legend-text">{escape(TRUST_LEGEND)}.</p>' if any_judged else ""
    if any(set(SHARES) & set(task_metrics(board, task)) for task in board["tasks"]):
        trust_legend = f'<p class="legend-text">{escape(DEGENERATION_LEGEND)}.</p>' + trust_legend
    if any(demand_metrics(board, task) for task in board["tasks"]):
        trust_legend += f'<p class="legend-text">{escape(DEMAND_LEGEND)}.</p>'
    if any(pairwise_rows(board, task) for task in board["tasks"]):
        trust_legend += f'<p class="legend-text">{escape(PAIRWISE_LEGEND)}.</p>'
    tables = "".join(_task_table(board, task) for task in board["tasks"])
    iterations = "".join(iteration_charts(board)) or "<p>No Self-Lengthen iterations in this leaderboard.</p>"
    quality = "".join(quality_charts(board)) or "<p>No judged task.</p>"
    figures = (
        '<h2>Figures</h2><h3>1. Length following</h3><p class="caption">One point per sample; dashed: produced = '
        f'demanded.</p><div class="figures">{length_following_chart(board)}</div>'
        '<h3>2. Self-Lengthen iterations</h3><p class="caption">Mean with 95% CI per iteration; iteration 0 is '
        f'the base model; dashed: arms without iterations.</p><div class="figures">{iterations}</div>'
        '<h3>3. Quality vs. length</h3><p class="caption">One point per judged sample; lines: the length-control '
        f'fit per model; dashed: the common length; {escape(UNRELIABLE)}: see the judge verdict column.</p><div class="figures">{quality}</div>'
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Self-Lengthen leaderboard</title>'
        f"<style>{STYLE}</style></head><body><h1>Self-Lengthen leaderboard</h1>"
        f'<p class="meta">{escape(board.get("created") or "")} · {base}</p>'
        f'<p class="legend-text">{escape(LEGEND)}; {escape(TONE_LEGEND)}; hover over one for its p-value. '
        f'Click a column header to sort.</p>{trust_legend}'
        f"{tables}{_training_table(board)}{figures}{_examples(board)}{_method(board)}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
