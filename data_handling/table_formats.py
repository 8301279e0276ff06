"""CSV and TSV tables of clips (`.csv`: comma-separated, `.tsv`: tab-separated), with a header row.

Columns (names as written, surrounding spaces ignored):
- `audio` (required): the audio file; a relative path is relative to the table's folder;
- captioned clips: `caption`, and further captions in `caption_2`, `caption_3`, ... (or `caption_1`, ...);
  a clip may also take several rows, one caption each: rows with the same `audio` are one clip;
- labelled clips (instead of captions): `label`, several labels in one cell separated by ';' ("dog;rain");
- optional: `duration` (seconds; else read from the file header), `id` (else the file name without its
  audio extension), `fold` (an integer; zero-shot classification and linear probe folds).
Clips keep the order of their first row.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from data_handling.audio_paths import clip_id_from_filename, json_audio_path
from data_handling.source_records import LABEL_SEPARATOR, SourceRecord, missing_columns_error

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
"""Table file suffix -> field delimiter."""
TABLE_LAYOUT = ("a header row with 'audio' and 'caption' (more captions: 'caption_2', ... or repeated rows) or "
                "'label' (several separated by ';'), optional 'duration', 'id', 'fold'")


def caption_columns(columns: list[str]) -> list[str]:
    """'caption' and the numbered caption columns, in the order of their number."""
    numbered = sorted((name for name in columns if name.startswith("caption_") and name[8:].isdigit()),
                      key=lambda name: int(name[8:]))
    return (["caption"] if "caption" in columns else []) + numbered


def _number(value: str, where: str, column: str, integer: bool = False) -> float | int | None:
    text = value.strip()
    if not text:
        return None
    try:
        number = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number of seconds"
        raise ValueError(f"{where}: expected {column!r} as {kind}, found {value!r}") from None
    if not integer and not 0 <= number < math.inf:
        raise ValueError(f"{where}: expected {column!r} as a finite number of seconds >= 0, found {value!r}")
    return number


def read_table_rows(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """(column names, rows as column -> cell text) of a CSV/TSV table; a missing file or header raises."""
    path = Path(path)
    delimiter = TABLE_SUFFIXES.get(path.suffix.lower(), ",")
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}; check the path in the YAML file or on the command line")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}: the table is empty; expected {TABLE_LAYOUT}")
        columns = [name.strip() for name in header]
        rows = [dict(zip(columns, cells, strict=False)) for cells in reader if any(cell.strip() for cell in cells)]
    return columns, rows


def read_table(path: str | Path, need: str = "caption or label") -> list[SourceRecord]:
    """The clips of a table (module docstring), one record per distinct `audio`.

    Args:
        need: "caption or label" (training), "label" (classification sets) or "caption" (retrieval sets).
    Raises:
        FileNotFoundError: no such file. ValueError: a needed column is missing (the message names the file
        and the columns found), or a duration or fold cell is not a number.
    """
    path = Path(path)
    columns, rows = read_table_rows(path)
    captions = caption_columns(columns)
    has_label = "label" in columns and (need == "label" or not captions)
    if "audio" not in columns or not (captions and need != "label" or has_label and need != "caption"):
        wanted = {"caption or label": "'caption' or 'label'", "label": "'label'", "caption": "'caption'"}[need]
        raise missing_columns_error(path, f"the columns 'audio' and {wanted} ({TABLE_LAYOUT})", columns)
    records: dict[str, SourceRecord] = {}
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        where = f"{path}, row {number}"
        audio = (row.get("audio") or "").strip()
        if not audio:
            raise ValueError(f"{where}: empty 'audio' cell; every row needs its audio file")
        record = records.get(audio)
        if record is None:
            clip_id = (row.get("id") or "").strip() or clip_id_from_filename(Path(audio).name)
            record = records[audio] = SourceRecord(json_audio_path(audio, path.parent), audio, clip_id, where)
            record.duration = _number(row.get("duration", ""), where, "duration")
            record.fold = _number(row.get("fold", ""), where, "fold", integer=True)
        if has_label:
            record.labels += [label for label in (row.get("label") or "").split(LABEL_SEPARATOR)]
        else:
            record.captions += [row.get(column) or "" for column in captions]
    return list(records.values())
