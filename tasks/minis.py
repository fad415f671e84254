"""The *_mini and *_small benchmarks: fixed subsets of the real files with length demands scaled down.

A 2-core CPU cannot write 8,000-word answers for 240 prompts, so each mini task keeps a few rows
and divides every length demand by MINI_SCALE, in the prompt text and in the constraint / length
field alike. A row is eligible only when its demand is mentioned exactly once in its text (as
"2000", "2,000" or a Chinese numeral such as "四千"), so the rewrite is unambiguous, and when the
scaled number is not already in the text. The selection rules are in the functions below and in
the task READMEs; nothing is stored, the minis are rebuilt from the real files every time.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tasks.scoring import prompt_language

MINI_SCALE = 10
MINI_MIN_WORDS = 100
MINI_MAX_WORDS = 800
SMALL_BOUNDS = (40, 1200)
"""The *_small variants' scaled demands: wider than the minis', so 40+ English prompts qualify."""

_CN_DIGITS = "零一二三四五六七八九"
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUMERAL = re.compile(r"[零一二两三四五六七八九十百千]+")


def parse_chinese_numeral(text: str) -> int | None:
    """The value of a Chinese numeral below 10,000 ("四千" 4000, "两千五" 2500, "八百" 800), else None.

    A bare 百 or 千 ("千年", "千万别") is a word, not a number, and gives None.
    """
    if text[0] in "百千零":
        return None
    total, digit, last_unit, after_zero = 0, None, None, False
    for char in text:
        if char == "零":
            after_zero = True
        elif char in _CN_UNITS:
            unit = _CN_UNITS[char]
            if last_unit is not None and unit >= last_unit:
                return None
            total += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
        elif digit is not None:
            return None
        else:
            digit = 2 if char == "两" else _CN_DIGITS.index(char)
    if digit is not None:
        # A trailing digit right after 千 or 百 counts in the unit below: 两千五 is 2500, 一千零五 is 1005.
        shorthand = last_unit in (100, 1000) and not after_zero
        total += digit * (last_unit // 10 if shorthand else 1)
    return total or None


def chinese_numeral(value: int) -> str:
    """Write 1 <= value < 10,000 as a Chinese numeral, with 两 for a leading 2 ("两百", "三百五十")."""
    if not 0 < value < 10_000:
        raise ValueError(f"chinese_numeral supports 1..9999, got {value}")
    parts, pending_zero = [], False
    for unit_value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = value // unit_value % 10
        if digit == 0:
            pending_zero = bool(parts)
            continue
        if pending_zero:
            parts.append("零")
            pending_zero = False
        word = "两" if digit == 2 and not parts and unit in ("千", "百") else _CN_DIGITS[digit]
        parts.append(word + unit)
    return "".join(parts)


def _arabic_pattern(value: int) -> re.Pattern[str]:
    forms = sorted({str(value), f"{value:,}"}, key=len, reverse=True)
    return re.compile(r"(?<![\d,.])(" + "|".join(re.escape(f) for f in forms) + r")(?![\d]|[,.]\d)")


def _chinese_spans(text: str, value: int) -> list[tuple[int, int]]:
    return [m.span() for m in _CN_NUMERAL.finditer(text) if parse_chinese_numeral(m.group()) == value]


def count_mentions(text: str, value: int) -> int:
    """How often `value` appears in `text` as a number ("2000", "2,000") or a Chinese numeral ("两千")."""
    return len(_arabic_pattern(value).findall(text)) + len(_chinese_spans(text, value))


def rewrite_number(text: str, old: int, new: int) -> str:
    """Replace every mention of `old` by `new`, keeping its script (Arabic digits or Chinese numeral)."""
    text = _arabic_pattern(old).sub(str(new), text)
    for start, end in reversed(_chinese_spans(text, old)):
        text = text[:start] + chinese_numeral(new) + text[end:]
    return text


def scaled(value: int, bounds: tuple[int, int] = (MINI_MIN_WORDS, MINI_MAX_WORDS)) -> int | None:
    """The mini demand for a real demand, or None when it does not divide evenly or leaves `bounds` (100-800)."""
    if value % MINI_SCALE:
        return None
    small = value // MINI_SCALE
    return small if bounds[0] <= small <= bounds[1] else None


def scale_row(row: dict, text_key: str, numbers: list[int], apply: Callable[[dict, dict[int, int]], dict],
              bounds: tuple[int, int] = (MINI_MIN_WORDS, MINI_MAX_WORDS)) -> dict | None:
    """`row` with its demands scaled in text and field (via `apply`), or None when not cleanly possible."""
    text = row[text_key]
    mapping = {}
    for number in numbers:
        small = scaled(number, bounds)
        if small is None or count_mentions(text, number) != 1 or count_mentions(text, small) != 0:
            return None
        mapping[number] = small
    for old, new in mapping.items():
        text = rewrite_number(text, old, new)
    return apply({**row, text_key: text}, mapping)


def scale_longen_row(row: dict, bounds: tuple[int, int] = (MINI_MIN_WORDS, MINI_MAX_WORDS)) -> dict | None:
    """A LonGen row with its demand(s) scaled in `query` and `constraint`, or None when not eligible."""
    numbers = [int(n) for n in re.findall(r"\d+", row["constraint"])]

    def apply(new_row: dict, mapping: dict[int, int]) -> dict:
        constraint = new_row["constraint"]
        for old, new in mapping.items():
            constraint = re.sub(rf"(?<!\d){old}(?!\d)", str(new), constraint)
        return {**new_row, "constraint": constraint}

    return scale_row(row, "query", numbers, apply, bounds)


def scale_longbench_write_row(row: dict, bounds: tuple[int, int] = (MINI_MIN_WORDS, MINI_MAX_WORDS)) -> dict | None:
    """A LongBench-Write / Ruler row with its demand scaled in `prompt` and `length`, or None when not eligible."""
    return scale_row(row, "prompt", [row["length"]],
                     lambda new_row, mapping: {**new_row, "length": mapping[row["length"]]}, bounds)


def _indexed(rows: list[dict], scale: Callable[[dict], dict | None]) -> list[dict]:
    """Eligible rows, scaled, each with `source_index` = its line in the real file (0-based)."""
    out = []
    for index, row in enumerate(rows):
        small = scale(row)
        if small is not None:
            out.append({**small, "source_index": index})
    return out


def longen_mini(rows: list[dict]) -> list[dict]:
    """12 LonGen rows: per type one row from each source range (2-4k, 4-6k, 6-8k), languages alternating.

    about and above take en/zh/en, range and below zh/en/zh (6 en, 6 zh); within each cell the
    first eligible row of the file is taken. Demands 2000-8000 become 200-800.
    """
    eligible = _indexed(rows, scale_longen_row)
    chosen = []
    for type_index, constraint_type in enumerate(("about", "range", "above", "below")):
        for range_index, source_range in enumerate(("2-4k", "4-6k", "6-8k")):
            language = ("en", "zh")[(type_index + range_index) % 2]
            chosen.append(next(
                r for r in eligible
                if (r["type"], r["range"], r["language"]) == (constraint_type, source_range, language)
            ))
    return sorted(chosen, key=lambda r: r["source_index"])


def evenly_spaced(rows: list[dict], count: int) -> list[dict]:
    """`count` rows at evenly spaced positions of `rows` (first and last included)."""
    if len(rows) < count:
        raise ValueError(f"only {len(rows)} eligible rows, {count} needed")
    return [rows[round(i * (len(rows) - 1) / (count - 1))] for i in range(count)]


def longbench_write_mini(rows: list[dict], count: int) -> list[dict]:
    """`count` eligible LongBench-Write rows (demands 1000-8000 -> 100-800) evenly spaced over the file,
    which is sorted by demanded length, so short and long demands are both represented."""
    return evenly_spaced(_indexed(rows, scale_longbench_write_row), count)


def longwrite_ruler_mini(rows: list[dict]) -> list[dict]:
    """6 LongWrite-Ruler rows: for each demand that scales into 100-800 (1000, 2000, 5000 -> 100, 200, 500)
    the first English and the first Chinese prompt of the file."""
    eligible = _indexed(rows, scale_longbench_write_row)
    chosen = []
    for length in sorted({r["length"] for r in eligible}):
        for language in ("en", "zh"):
            chosen.append(next(r for r in eligible if r["length"] == length and prompt_language(r["prompt"]) == language))
    return sorted(chosen, key=lambda r: r["source_index"])


def longen_en_small(rows: list[dict]) -> list[dict]:
    """40 English LonGen rows, 10 per type, evenly spaced over the file's eligible ones (demands 200-800)."""
    eligible = [r for r in _indexed(rows, scale_longen_row) if r["language"] == "en"]
    chosen = [row for constraint_type in ("about", "range", "above", "below")
              for row in evenly_spaced([r for r in eligible if r["type"] == constraint_type], 10)]
    return sorted(chosen, key=lambda r: r["source_index"])


def longbench_write_en_small(rows: list[dict]) -> list[dict]:
    """40 English LongBench-Write rows whose demands scale cleanly into 40-1200 words (SMALL_BOUNDS), evenly
    spaced over the file (sorted by demand), so every demand length is represented."""
    return evenly_spaced(_indexed(rows, lambda row: scale_longbench_write_row(row, SMALL_BOUNDS)), 40)


# mini name -> (real benchmark it is cut from, derivation)
MINIS: dict[str, tuple[str, Callable[[list[dict]], list[dict]]]] = {
    "longen_mini": ("longen", longen_mini),
    "longbench_write_mini": ("longbench_write", lambda rows: longbench_write_mini(rows, 12)),
    "longbench_write_en_mini": ("longbench_write_en", lambda rows: longbench_write_mini(rows, 8)),
    "longwrite_ruler_mini": ("longwrite_ruler", longwrite_ruler_mini),
    "longen_en_small": ("longen", longen_en_small),
    "longbench_write_en_small": ("longbench_write_en", longbench_write_en_small),
}
