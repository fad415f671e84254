"""The method's prompt templates: text files under `selflengthen/prompts/<lang>/<name>.txt`.

Templates use `str.format` fields: self_instruct {first} {second}; judge_instruction
{instruction}; extend {instruction} {answer}.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_prompt(name: str, lang: str) -> str:
    """The template `name` in language `lang`, read once."""
    path = resources.files("selflengthen") / "prompts" / lang / f"{name}.txt"
    if not path.is_file():
        raise ValueError(f"no {name!r} prompt for language {lang!r} (looked for {path})")
    return path.read_text(encoding="utf-8")


def render_prompt(name: str, lang: str, **fields: str) -> str:
    return load_prompt(name, lang).format(**fields)
