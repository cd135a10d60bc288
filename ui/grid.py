"""Editable grids that cannot write a stale edit onto another row.

``st.data_editor`` keeps pending edits by row position in its widget state, and the browser
sends them again on the next rerun. A grid whose rows can move (a re-rank, a save, a filter,
someone else's edit) is therefore keyed by every row's id and version: when any of them
changes, a fresh grid starts with no pending edit. Changes are read by row id, never position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import pandas as pd


def versioned_key(prefix: str, rows: Iterable[tuple[Hashable, int]]) -> str:
    """A widget key made of each shown row's (id, version), in display order."""
    shown = ",".join(f"{row_id}.{version}" for row_id, version in rows)
    return f"{prefix}_{hashlib.sha256(shown.encode()).hexdigest()[:16]}"


def changed_cells(
    before: pd.DataFrame, after: pd.DataFrame, columns: Mapping[str, str]
) -> dict[Hashable, dict[str, Any]]:
    """Per row id (the frames' index), the changed `columns` ({field: column}) as field → value.

    An emptied cell reads as None; a cell empty before and after is unchanged.
    """
    changes: dict[Hashable, dict[str, Any]] = {}
    for row_id in before.index:
        old, new = before.loc[row_id], after.loc[row_id]
        row = {
            field: _plain(new[column])
            for field, column in columns.items()
            if not (pd.isna(old[column]) and pd.isna(new[column])) and old[column] != new[column]
        }
        if row:
            changes[row_id] = row
    return changes


def _plain(value: Any) -> Any:
    """A cell as a plain Python value (None for an empty cell, no numpy scalars)."""
    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value
