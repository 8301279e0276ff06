"""Hugging Face `datasets`: a dataset saved with `save_to_disk` (a folder with state.json, or a DatasetDict's
folder with dataset_dict.json: its "train" split, or its only split), or parquet files (one file, or a
folder of them), read offline with the `datasets` package as its users write them.

Columns: `audio` (or the first column of type `datasets.Audio`): a `datasets.Audio` value ({"bytes",
"path"}) or a path string; captions: `caption` (a string or a list of strings) and/or `caption_2`, ...;
or labels: `label` (a `ClassLabel`, a string with ';' between labels, or a list of strings); optional
`duration`, `id` and `fold` as in tables (data_handling/table_formats.py).

Audio stored as bytes is written once into a cache folder (`data_args.audio_cache`, default
"<dataset>.audio" beside the dataset), one file per clip named by its position and the bytes' hash, and
read from there like any audio file: partial decoding from the header, durations, check_data, shards and
DataLoader workers then work as for every other format, and no worker holds the dataset's audio in memory.
A path without bytes is relative to the dataset's folder.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_handling.audio_paths import AUDIO_EXTENSIONS, clip_id_from_filename
from data_handling.source_records import LABEL_SEPARATOR, SourceRecord, missing_columns_error
from data_handling.table_formats import caption_columns

HF_SAVED_MARKERS = ("state.json", "dataset_dict.json")
"""Files that mark a folder written by save_to_disk (a Dataset, a DatasetDict)."""
BATCH_ROWS = 256


def is_hf_dataset(path: Path) -> bool:
    """A parquet file, a folder of parquet files, or a save_to_disk folder."""
    if path.is_file():
        return path.suffix.lower() == ".parquet"
    return path.is_dir() and (any((path / marker).is_file() for marker in HF_SAVED_MARKERS)
                              or any(path.glob("*.parquet")))


def default_audio_cache(path: Path) -> Path:
    """'<dataset>.audio' beside the dataset (file or folder)."""
    path = path.resolve()
    return path.parent / f"{path.name}.audio"


def open_hf_dataset(path: Path, cache_dir: Path) -> Any:
    """The datasets.Dataset at `path` (module docstring); parquet's own cache goes under cache_dir."""
    import datasets

    if path.is_file() or not any((path / marker).is_file() for marker in HF_SAVED_MARKERS):
        files = [str(path)] if path.is_file() else sorted(str(file) for file in path.glob("*.parquet"))
        return datasets.Dataset.from_parquet(files, cache_dir=str(cache_dir / "parquet"))
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if "train" not in loaded and len(splits) != 1:
            raise ValueError(f"{path}: a DatasetDict with splits {splits} and none named 'train'; save the split "
                             f"to read with save_to_disk on its own")
        return loaded["train" if "train" in loaded else splits[0]]
    return loaded


def _audio_column(dataset: Any, path: Path) -> str:
    import datasets

    if "audio" in dataset.column_names:
        return "audio"
    typed = [name for name, feature in dataset.features.items() if isinstance(feature, datasets.Audio)]
    if not typed:
        raise missing_columns_error(path, "an 'audio' column (datasets.Audio, or paths) and a 'caption' or "
                                    "'label' column", dataset.column_names)
    return typed[0]


def _text_columns(dataset: Any, path: Path, need: str) -> tuple[list[str], str | None]:
    """(caption columns, label column or None) as `need` asks ("caption or label", "label", "caption")."""
    captions = caption_columns(list(dataset.column_names)) if need != "label" else []
    label = "label" if "label" in dataset.column_names and need != "caption" and not captions else None
    if not captions and label is None:
        wanted = {"caption or label": "'caption' or 'label'", "label": "'label'", "caption": "'caption'"}[need]
        raise missing_columns_error(path, f"an audio column and a {wanted} column", dataset.column_names)
    return captions, label


def _labels(value: Any, feature: Any) -> list[str]:
    import datasets

    if isinstance(feature, datasets.ClassLabel) and isinstance(value, int):
        return [feature.int2str(value)]
    if isinstance(value, list):
        return [str(item) for item in value]
    return [] if value is None else str(value).split(LABEL_SEPARATOR)


def _captions(row: dict[str, Any], columns: list[str]) -> list[str]:
    captions: list[str] = []
    for column in columns:
        value = row.get(column)
        captions += [str(item) for item in value] if isinstance(value, list) else [value or ""]
    return captions


class AudioMaterialiser:
    """Writes audio bytes once into a cache folder (atomically: several processes may read the same dataset)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, position: int, data: bytes, name: str | None) -> Path:
        suffix = Path(name).suffix.lower() if name else ""
        suffix = suffix if suffix in AUDIO_EXTENSIONS else ".wav"  # soundfile reads by content, not by name
        target = self.folder / f"{position:08d}-{hashlib.sha1(data).hexdigest()[:12]}{suffix}"
        if not target.is_file() or target.stat().st_size != len(data):
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            os.replace(partial, target)
        return target


def _rows(dataset: Any, columns: list[str]) -> Iterator[dict[str, Any]]:
    for batch in dataset.select_columns(columns).iter(batch_size=BATCH_ROWS):
        for position in range(len(batch[columns[0]])):
            yield {column: batch[column][position] for column in columns}


def check_hf_columns(path: str | Path, need: str = "caption or label", audio_cache: str | Path | None = None
                     ) -> None:
    """ValueError when the dataset lacks its audio or text column (nothing materialised)."""
    path = Path(path)
    cache = Path(audio_cache) / path.resolve().name if audio_cache else default_audio_cache(path)
    dataset = open_hf_dataset(path, cache)
    _audio_column(dataset, path)
    _text_columns(dataset, path, need)


def read_hf_dataset(path: str | Path, need: str = "caption or label", audio_cache: str | Path | None = None
                    ) -> list[SourceRecord]:
    """One record per row of the dataset (module docstring).

    Raises:
        ValueError: a needed column is missing (the message names the dataset and its columns).
    """
    import datasets

    path = Path(path)
    cache = Path(audio_cache) / path.resolve().name if audio_cache else default_audio_cache(path)
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        dataset = open_hf_dataset(path, cache)
        audio_column = _audio_column(dataset, path)
        captions, label = _text_columns(dataset, path, need)
        if isinstance(dataset.features[audio_column], datasets.Audio):
            dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
        extra = [name for name in ("id", "duration", "fold") if name in dataset.column_names]
        label_feature = dataset.features[label] if label else None
        columns = list(dict.fromkeys([audio_column, *captions, *([label] if label else []), *extra]))
        materialiser = AudioMaterialiser(cache)
        base = path if path.is_dir() else path.parent
        records = [_record(row, position, path, base, audio_column, captions, label, label_feature, materialiser)
                   for position, row in enumerate(_rows(dataset, columns))]
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    return records


def _record(row: dict[str, Any], position: int, path: Path, base: Path, audio_column: str, captions: list[str],
            label: str | None, label_feature: Any, materialiser: AudioMaterialiser) -> SourceRecord:
    where = f"{path}, row {position}"
    value = row[audio_column]
    data, name = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (None, value)
    if data:
        audio_path = materialiser.path_for(position, data, name)
    elif name:
        audio_path = Path(name).expanduser()
        audio_path = audio_path if audio_path.is_absolute() else base / audio_path
    else:
        audio_path = Path(f"<row {position}: no audio bytes or path>")
    audio_ref = str(name) if name else f"row {position} (bytes)"
    clip_id = str(row["id"]) if row.get("id") is not None else clip_id_from_filename(Path(name).name) if name \
        else str(position)
    duration = row.get("duration")
    fold = row.get("fold")
    return SourceRecord(audio_path, audio_ref, clip_id, where,
                        captions=_captions(row, captions) if captions else [],
                        labels=_labels(row[label], label_feature) if label else [],
                        duration=float(duration) if duration is not None else None,
                        fold=int(fold) if fold is not None else None)
