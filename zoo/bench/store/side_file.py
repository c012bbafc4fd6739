"""``rows.json``: finished rows kept in their run folder when the store cannot take them
(``zoo bench --collect RUNS_DIR`` ingests these files)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.bench.store.row import ResultRow, _json_default
from zoo.fileio import atomic_write_text, nan_to_null

#: The file finished rows are kept in when the store cannot take them (the one ``--collect`` reads).
SIDE_FILE = "rows.json"


def keep_rows(rows: Sequence[ResultRow]) -> list[Path]:
    """Keep ``rows`` in ``<run_dir>/rows.json`` for each run folder they name (atomic write, merged
    by identity with rows already kept there, newest wins); returns the files written. Rows
    without a run folder are not kept. ``zoo bench --collect RUNS_DIR`` ingests these files."""
    by_dir: dict[str, list[ResultRow]] = {}
    for row in rows:
        if row.run_dir:
            by_dir.setdefault(os.path.abspath(row.run_dir), []).append(row)
    written = []
    for folder, kept in by_dir.items():
        path = Path(folder) / SIDE_FILE
        merged: dict[tuple[Any, ...], ResultRow] = {}
        if path.exists():
            try:
                merged = {r.identity: r for r in (ResultRow.from_dict(d) for d in json.loads(path.read_text()))}
            except (OSError, ValueError, TypeError, KeyError, RecursionError, MemoryError):  # unreadable: set aside, never overwritten
                os.replace(path, path.with_name(f"{SIDE_FILE}.damaged-{int(time.time())}"))
        merged.update({r.identity: r for r in kept})
        data = [nan_to_null(r.to_dict()) for r in merged.values()]  # strict JSON: NaN becomes null
        atomic_write_text(path, json.dumps(data, indent=1, default=_json_default, allow_nan=False) + "\n")
        written.append(path)
    return written
