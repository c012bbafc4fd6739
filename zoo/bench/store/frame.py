"""Result rows as a pandas DataFrame (pandas is imported only here, and lazily)."""

from __future__ import annotations

from collections.abc import Iterable

from zoo.bench.store.row import _COLUMNS, ResultRow


def rows_to_frame(rows: Iterable[ResultRow]):  # noqa: ANN201
    """Flatten result rows into a DataFrame (see `ResultsStore.to_frame`)."""
    import pandas as pd

    flat_prefixes = ("metrics", "floor", "costs", "sample_options", "environment")
    records = []
    for row in rows:
        data = row.to_dict()
        record = {k: v for k, v in data.items() if k not in flat_prefixes}
        for prefix in flat_prefixes:
            for key, value in data[prefix].items():
                record[f"{prefix}.{key}"] = value
        records.append(record)
    if not records:
        return pd.DataFrame(columns=[c for c in _COLUMNS if c not in flat_prefixes])
    frame = pd.DataFrame.from_records(records)
    for column in frame.columns:
        if column.startswith(("metrics.", "floor.", "costs.")):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame
