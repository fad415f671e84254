"""Write leaderboard.json and its views (leaderboard.md, leaderboard.html) into one folder, as one set.

All three texts are rendered in memory first — the views from the JSON text as it will be on disk, so they
can show nothing the file lacks — and only then written together: a failure leaves the old set untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

from leaderboard.board import board_json, checked_leaderboard, load_leaderboard
from leaderboard.build import build_leaderboard
from leaderboard.errors import OneLineParser, path_argument, run_command
from leaderboard.fileset import write_files_together
from leaderboard.render_html import render_html
from leaderboard.render_markdown import render_markdown
from leaderboard.render_terminal import print_leaderboard

FILE_NAMES = {"json": "leaderboard.json", "markdown": "leaderboard.md", "html": "leaderboard.html"}


def render_leaderboard_files(board: dict) -> dict[str, str]:
    """The three texts by kind; the views are rendered from the JSON text read back and validated."""
    text = board_json(board)
    stored = checked_leaderboard(Path(FILE_NAMES["json"]), json.loads(text))
    return {"json": text, "markdown": render_markdown(stored), "html": render_html(stored)}


def write_leaderboard_files(board: dict, out_dir: Path) -> dict[str, Path]:
    """Render all three files, then write them together; returns the three paths by kind."""
    paths = {kind: Path(out_dir) / name for kind, name in FILE_NAMES.items()}
    texts = render_leaderboard_files(board)
    write_files_together({paths[kind]: texts[kind] for kind in paths})
    return paths


def publish(run_dirs: list[Path], base: str | None, out_dir: Path,
            demand_ranges: dict[str, list[list[int]]] | None = None) -> dict[str, Path]:
    """Build the leaderboard of these run directories and write it with its views into ``out_dir``;
    ``demand_ranges``: {task: [[low, high], ...]}, as build_leaderboard takes them."""
    return write_leaderboard_files(build_leaderboard(run_dirs, base, demand_ranges), out_dir)


def main(argv: list[str] | None = None, demand_ranges: dict[str, list[list[int]]] | None = None) -> int:
    """``selflengthen leaderboard RUN_DIR ... --out DIR``: write the files, print the tables; 2 on any error.
    ``demand_ranges``: the task YAMLs' (the harness passes them; this package may not read tasks/)."""
    parser = OneLineParser(prog="selflengthen leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=path_argument, nargs="+", help="run directories (docs/run_directory.md)")
    parser.add_argument("--base", help="model name of the reference row (default: the run with arm 'base')")
    parser.add_argument("--out", type=path_argument, required=True, help="folder for leaderboard.{json,md,html}")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error")
    args = parser.parse_args(argv)

    def command() -> int:
        paths = publish(args.run_dirs, args.base, args.out, demand_ranges)
        print_leaderboard(load_leaderboard(paths["json"]))
        print(f"wrote {paths['json']}, {paths['markdown'].name}, {paths['html'].name}")
        return 0

    return run_command(command, args.debug)
