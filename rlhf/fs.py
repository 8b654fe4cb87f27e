"""Atomic writes: a folder or a JSON file appears whole or not at all.

`atomic_dir` is the one way a model folder, a registry snapshot, the converted built-in model or a
PPO checkpoint reaches its final path: it is written into a temporary sibling and renamed into place
(atomic on one filesystem). A folder already at the target (left by a crash between the rename and
the registration, or by a second run) is moved aside to `.orphan-<uuid>`, never deleted, so the new
folder always lands and nothing written before is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable


def move_aside(path: Path) -> Path:
    """Rename `path` to a unique `.orphan-<uuid>` sibling (kept for a person to inspect or delete); returns it."""
    orphan = path.parent / f".orphan-{path.name}-{uuid.uuid4().hex[:8]}"
    shutil.move(str(path), str(orphan))
    return orphan


def atomic_dir(final: Path, write: Callable[[Path], Any]) -> Path:
    """Run `write(tmp)` on a fresh temporary folder next to `final`, then rename it to `final`.

    Anything that must succeed before the folder may appear (e.g. claiming a version row) belongs in
    `write`. On any error the temporary folder is removed and the error re-raised: a crash leaves no
    half folder. An existing `final` (a folder or a link) is moved aside first (`move_aside`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        if final.exists() or final.is_symlink():
            move_aside(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only still there when something failed
    return final


def write_json(path: Path, obj) -> None:
    """Write `obj` as indented JSON atomically (temporary file + rename); non-JSON values as str()."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=str))
    os.replace(tmp, path)
