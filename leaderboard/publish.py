"""Write leaderboard.json and its views (leaderboard.md, leaderboard.html) into one folder, atomically.

The views are rendered from the JSON as read back from disk, so they can show nothing the file lacks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.journal import write_text_atomically
from leaderboard.board import load_leaderboard, write_json_atomic
from leaderboard.build import build_leaderboard
from leaderboard.errors import LeaderboardError
from leaderboard.render_html import render_html
from leaderboard.render_markdown import render_markdown
from leaderboard.render_terminal import print_leaderboard


def write_leaderboard_files(board: dict, out_dir: Path) -> dict[str, Path]:
    """Write the JSON first, then the Markdown and HTML views of it; returns the three paths by kind."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "leaderboard.json", "markdown": out_dir / "leaderboard.md",
             "html": out_dir / "leaderboard.html"}
    write_json_atomic(paths["json"], board)
    stored = load_leaderboard(paths["json"])
    write_text_atomically(paths["markdown"], render_markdown(stored))
    write_text_atomically(paths["html"], render_html(stored))
    return paths


def publish(run_dirs: list[Path], base: str | None, out_dir: Path) -> dict[str, Path]:
    """Build the leaderboard of these run directories and write it with its views into ``out_dir``."""
    return write_leaderboard_files(build_leaderboard(run_dirs, base), out_dir)


def main(argv: list[str] | None = None) -> int:
    """``selflengthen leaderboard RUN_DIR ... --out DIR``: write the files, print the tables; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="selflengthen leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="run directories (docs/run_directory.md)")
    parser.add_argument("--base", help="model name of the reference row (default: the run with arm 'base')")
    parser.add_argument("--out", type=Path, required=True, help="folder for leaderboard.{json,md,html}")
    args = parser.parse_args(argv)
    try:
        paths = publish(args.run_dirs, args.base, args.out)
    except LeaderboardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_leaderboard(load_leaderboard(paths["json"]))
    print(f"wrote {paths['json']}, {paths['markdown'].name}, {paths['html'].name}")
    return 0
