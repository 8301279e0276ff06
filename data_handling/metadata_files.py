"""Reading the metadata files of the datasets (json, csv, tsv), for the training and the evaluation readers.

Every function raises FileNotFoundError or ValueError with a message that names the file (and the line,
where there is one) and says what was expected: `hint` is the text put in parentheses after a missing
file, e.g. the expected layout of the dataset's folder or "check the path in the YAML file".
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METADATA_ENCODING = "utf-8-sig"
"""How metadata files are read: UTF-8, with a byte order mark at the start skipped (spreadsheet programs write
one; pandas, which the reference's readers use, skips it too), so "\ufefffilename" is never a header."""


def require_file(path: Path, what: str, hint: str) -> Path:
    """`path` if it is a file, else FileNotFoundError '<what> not found: <path> (<hint>)'."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} ({hint})")
    return path


def load_json(path: Path, what: str, hint: str) -> Any:
    """The content of a json file (FileNotFoundError as require_file; ValueError when it is not json)."""
    require_file(path, what, hint)
    try:
        with path.open(encoding=METADATA_ENCODING) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {path} is not valid json: {error}") from error


def read_csv_records(path: Path, what: str, layout: str, num_fields: int | None = None,
                     delimiter: str = ",") -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-empty rows of a csv (or tsv) without header; with num_fields, every
    row must have that many fields."""
    require_file(path, what, layout)
    with path.open(newline="", encoding=METADATA_ENCODING) as file:
        rows = [(line, row) for line, row in enumerate(csv.reader(file, delimiter=delimiter), start=1) if row]
    for line, row in rows:
        if num_fields is not None and len(row) != num_fields:
            raise ValueError(f"{path}, line {line}: expected {num_fields} fields ({layout}), got {row}")
    return rows


def read_csv_dicts(path: Path, what: str, required: Sequence[str], layout: str) -> list[dict[str, str]]:
    """Rows of a csv with a header, as dicts; ValueError if a required column is missing."""
    require_file(path, what, layout)
    with path.open(newline="", encoding=METADATA_ENCODING) as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        missing = [column for column in required if column not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {columns} ({layout})")
        return list(reader)


def read_tsv_columns(path: Path, what: str, column_sets: Sequence[Sequence[str]], layout: str) -> list[list[str]]:
    """Rows of a tsv whose header holds one of `column_sets` (the first that fits), as lists of that set's
    columns in its order ("" where a row is short); empty rows are skipped."""
    require_file(path, what, layout)
    with path.open(newline="", encoding=METADATA_ENCODING) as file:
        rows = list(csv.reader(file, delimiter="\t"))
    header = [cell.strip() for cell in rows[0]] if rows else []
    columns = next((names for names in column_sets if all(name in header for name in names)), None)
    if columns is None:
        raise ValueError(f"{path}: header {header} has none of the column sets {list(column_sets)} ({layout})")
    positions = [header.index(name) for name in columns]
    return [[row[pos] if pos < len(row) else "" for pos in positions] for row in rows[1:] if any(row)]


def read_durations_tsv(path: Path, what: str, column_sets: Sequence[tuple[str, str]], layout: str
                       ) -> list[tuple[str, float]]:
    """(name, seconds) per row of a durations tsv (header: one of `column_sets`, e.g. filename, duration)."""
    durations = []
    for line, (name, duration) in enumerate(read_tsv_columns(path, what, column_sets, layout), start=2):
        try:
            durations.append((name.strip(), float(duration)))
        except ValueError as error:
            raise ValueError(f"{path}, line {line}: duration must be a number, got {duration!r}") from error
    return durations


def parse_int(value: Any, path: Path, line: int, column: str) -> int:
    """int(value) (also for "3.0"), or a ValueError naming file, line and column."""
    try:
        return int(float(value))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}, line {line}: column {column!r} must be an integer, got {value!r}") from error
