"""Read a dataset's CSV with row numbers as a spreadsheet shows them, and say where it is wrong.

Row 1 is the header; the first data row is row 2. Every problem is a `DatasetError` whose
message starts ``<file>, row <n>:`` (``row 1 (header)`` for column problems).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from ..errors import DatasetError


def error(path: Path, row: int, what: str) -> DatasetError:
    where = "row 1 (header)" if row == 1 else f"row {row}"
    return DatasetError(f"{path}, {where}: {what}")


@dataclass
class Row:
    number: int  # 1-based, as a spreadsheet shows it
    values: Dict[str, str]  # column -> stripped text ("" for blank)

    def get(self, column: str) -> str:
        return self.values.get(column, "")


@dataclass
class Table:
    path: Path
    columns: List[str]
    rows: List[Row]

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def error(self, row: int, what: str) -> DatasetError:
        return error(self.path, row, what)

    def int_value(self, row: Row, column: str, lo: Optional[int] = None, hi: Optional[int] = None,
                  allowed: Optional[Sequence[int]] = None) -> Optional[int]:
        """An integer cell (``"3"``, ``"3.0"``), None when blank; out-of-range or non-numbers are errors."""
        text = row.get(column)
        if text == "":
            return None
        try:
            f = float(text)
        except ValueError:
            raise self.error(row.number, f"'{column}' is '{text}', not a whole number") from None
        if not f.is_integer():
            raise self.error(row.number, f"'{column}' is '{text}', not a whole number")
        v = int(f)
        if allowed is not None and v not in allowed:
            raise self.error(row.number, f"'{column}' is {v}; must be one of {', '.join(map(str, allowed))}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.error(row.number, f"'{column}' is {v}; must be {lo}-{hi}")
        return v

    def float_value(self, row: Row, column: str) -> Optional[float]:
        text = row.get(column)
        if text == "":
            return None
        try:
            v = float(text)
        except ValueError:
            raise self.error(row.number, f"'{column}' is '{text}', not a number") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise self.error(row.number, f"'{column}' is '{text}', not a finite number")
        return v


def read_table(path: Path, required: Sequence[str] = (), what: str = "") -> Table:
    """Read ``path`` (UTF-8, optional BOM); require ``required`` columns; skip blank rows."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file" + (f" ({what})" if what else ""))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            records = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a UTF-8 text CSV file ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DatasetError(f"{path}: not a readable CSV file ({e})") from None
    if not records or not any(c.strip() for c in records[0]):
        raise DatasetError(f"{path}, row 1 (header): the file is empty; expected columns {', '.join(required)}")
    columns = [c.strip() for c in records[0]]
    seen = set()
    for c in columns:
        if c and c in seen:
            raise error(path, 1, f"column '{c}' appears twice")
        seen.add(c)
    missing = [c for c in required if c not in columns]
    if missing:
        raise error(path, 1, f"missing column{'s' if len(missing) > 1 else ''} "
                    + ", ".join(f"'{c}'" for c in missing) + f" (found: {', '.join(columns)})")
    rows: List[Row] = []
    for i, rec in enumerate(records[1:], start=2):
        if not any(c.strip() for c in rec):
            continue
        if len(rec) > len(columns) and any(c.strip() for c in rec[len(columns):]):
            raise error(path, i, f"{len(rec)} cells but the header has {len(columns)} columns")
        values = {col: (rec[k].strip() if k < len(rec) else "") for k, col in enumerate(columns) if col}
        rows.append(Row(i, values))
    return Table(path, columns, rows)
