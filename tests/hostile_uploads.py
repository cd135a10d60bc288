"""Small uploads that hold unbounded work (issue 24 item 5), built in a second or two: a gzip
CSV expanding to 100 M rows (2.5 MB), a Parquet file of tens of millions of rows (1 KB), a CSV
of 10**6 columns (10 MB)."""

from __future__ import annotations

import gzip
from pathlib import Path

BLOCK_ROWS = 500_000


def gzip_csv_rows(rows: int) -> bytes:
    """A .csv.gz of a header and `rows` rows: one compressed block of rows, repeated as gzip
    members (a gzip file may hold many; each decompresses to the same block)."""
    block = b"u1,control,1\n" * BLOCK_ROWS
    member = gzip.compress(block, compresslevel=9, mtime=0)
    body = member * (rows // BLOCK_ROWS)
    return gzip.compress(b"unit_id,variant,conversion\n", mtime=0) + body


def parquet_rows(path: Path, rows: int) -> Path:
    """A Parquet file of `rows` empty rows of a user-level file's columns (no values to
    encode: it takes about a second per 25 M rows to write)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = pa.nulls(rows)
    table = pa.table({"unit_id": empty, "variant": empty, "conversion": empty})
    pq.write_table(table, path, row_group_size=rows)
    return path


def wide_csv(columns: int) -> bytes:
    """A CSV with `columns` columns and one row."""
    header = ",".join(["unit_id", "variant", *(f"c{i}" for i in range(columns - 2))])
    return (header + "\n" + ",".join(["u1", "control", *("0" * (columns - 2))]) + "\n").encode()
