"""ui.grid: a grid key changes with any row's id, version or order; changes are read by id."""

from __future__ import annotations

import pandas as pd

from ui.grid import changed_cells, versioned_key

COLUMNS = {"reach": "Reach", "effort": "Effort"}


def test_grid_versioned_key_changes_with_order_version_and_rows() -> None:
    key = versioned_key("grid", [(1, 1), (2, 1)])
    assert key == versioned_key("grid", [(1, 1), (2, 1)])
    assert key.startswith("grid_")
    assert key != versioned_key("grid", [(2, 1), (1, 1)])  # a re-rank
    assert key != versioned_key("grid", [(1, 2), (2, 1)])  # a save (new version)
    assert key != versioned_key("grid", [(1, 1)])  # a filter


def test_grid_changed_cells_are_keyed_by_row_id_not_position() -> None:
    before = pd.DataFrame({"Reach": [70000.0, 15000.0], "Effort": [3.0, None]},
                          index=pd.Index([13, 14], name="id"))
    after = before.copy()
    after.loc[14, "Reach"] = 150000.0
    after.loc[13, "Effort"] = None
    assert changed_cells(before, after, COLUMNS) == {13: {"effort": None},
                                                     14: {"reach": 150000.0}}
    assert changed_cells(before, before.copy(), COLUMNS) == {}  # empty cells stay unchanged
    value = changed_cells(before, after, COLUMNS)[14]["reach"]
    assert type(value) is float  # a plain float, not numpy's
