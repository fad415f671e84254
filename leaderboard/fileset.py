"""Write several files as one set: every file gets its new text, or on any failure every file keeps its old one.

Each new text is first written completely beside its target (a hidden, fsynced file); only then are the
targets swapped in one after another, each old file kept as a hard link until the whole set is in place.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from infra.journal import write_text_atomically


def _keep_old(path: Path, backup: Path) -> None:
    try:
        os.link(path, backup)
    except OSError:  # a file system without hard links
        shutil.copy2(path, backup)


def _sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_files_together(files: dict[Path, str]) -> None:
    """Write ``{path: text}`` so that either all files are new or (after any error) all are as they were."""
    token = secrets.token_hex(4)
    staged = {path: path.parent / f".{path.name}.{token}.new" for path in files}
    backups = {path: path.parent / f".{path.name}.{token}.old" for path in files}
    swapped: list[Path] = []
    try:
        for path, text in files.items():
            write_text_atomically(staged[path], text)
        for path in files:
            if path.exists():
                _keep_old(path, backups[path])
            os.replace(staged[path], path)
            swapped.append(path)
    except BaseException:
        for path in reversed(swapped):
            if backups[path].exists():
                os.replace(backups[path], path)
            else:
                path.unlink(missing_ok=True)
        raise
    finally:
        for path in files:
            staged[path].unlink(missing_ok=True)
            backups[path].unlink(missing_ok=True)
        for folder in {path.parent for path in files if path.parent.is_dir()}:
            _sync_folder(folder)
