"""The one dispatch from a path of `json_files` (or of an evaluation set) to the reader of its format.

    a.json                    WavCaps json (data_handling/wavcaps.py), as the reference
    a.csv / a.tsv             table of captions or labels (data_handling/table_formats.py)
    folder of class folders   labelled clips (data_handling/labelled_folders.py)
    a.parquet, a folder of parquet files, a save_to_disk folder
                              Hugging Face dataset (data_handling/hf_datasets.py)

Every other path is read as a WavCaps json, so that existing configurations keep their meaning. The
formats other than WavCaps json give the same rows as a WavCaps json with one "caption" list per clip
(data_handling/source_records.py); the blacklist applies to WavCaps json files only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from data_handling.blacklist import Blacklist, read_blacklist
from data_handling.caption_rows import CaptionItem, JsonFileContents
from data_handling.hf_datasets import check_hf_columns, is_hf_dataset, read_hf_dataset
from data_handling.labelled_folders import class_folders, read_labelled_folder
from data_handling.source_records import SourceOptions, SourceRecord, records_to_contents
from data_handling.table_formats import TABLE_SUFFIXES, read_table
from data_handling.wavcaps import read_json_file

FORMATS = ("wavcaps", "table", "labelled_folder", "hf_dataset")


def source_format(path: str | Path) -> str:
    """Which of FORMATS a path holds (module docstring); a folder that is none of the others is a labelled folder."""
    path = Path(path).expanduser()
    if path.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    if is_hf_dataset(path):
        return "hf_dataset"
    if path.is_dir():
        return "labelled_folder"
    return "wavcaps"


def read_source_records(path: str | Path, need: str = "caption or label",
                        options: SourceOptions | None = None) -> list[SourceRecord]:
    """The clips of a table, labelled folder or Hugging Face dataset, one record each (not for WavCaps json).

    Args:
        need: "caption or label" (training), "label" (classification sets), "caption" (retrieval sets).
    """
    options = options or SourceOptions()
    path = Path(path).expanduser()
    kind = source_format(path)
    if kind == "table":
        return read_table(path, need)
    if kind == "hf_dataset":
        return read_hf_dataset(path, need, options.audio_cache)
    if kind == "labelled_folder":
        if need == "caption":
            raise ValueError(f"{path}: a folder of class folders has labels, not captions; a retrieval set needs "
                             f"captions (a WavCaps json, or a table or dataset with a 'caption' column)")
        return read_labelled_folder(path)
    raise ValueError(f"{path}: a WavCaps json file is read by data_handling.wavcaps, not as records")


def read_training_source(path: str | Path, audio_root: Path | None, blacklist: Blacklist | None,
                         first_clip_index: int, options: SourceOptions | None = None) -> JsonFileContents:
    """The caption rows of one entry of json_files, whatever its format; clip indices from first_clip_index."""
    if source_format(path) == "wavcaps":
        return read_json_file(path, audio_root, blacklist, first_clip_index)
    options = options or SourceOptions()
    return records_to_contents(read_source_records(path, options=options), str(path), first_clip_index, options)


def check_source_layout(path: str | Path, need: str = "caption or label", options: SourceOptions | None = None) -> None:
    """The errors of a source's layout (a missing column, fewer than two class folders), without reading any
    audio: what a script checks before it writes anything. WavCaps json files are not checked here."""
    options = options or SourceOptions()
    kind = source_format(path)
    if kind == "table":
        read_table(Path(path).expanduser(), need)
    elif kind == "hf_dataset":
        check_hf_columns(Path(path).expanduser(), need, options.audio_cache)
    elif kind == "labelled_folder":
        class_folders(Path(path).expanduser())


def read_json_files(json_files: str | Path | Sequence[str | Path], audio_root: str | Path | None = None,
                    blacklist: str | Path | Sequence[str | Path] | Blacklist | None = None,
                    options: SourceOptions | None = None) -> list[JsonFileContents]:
    """read_training_source for each file in order (the reader of its format),
    clip indices running over all of them.

    Args:
        json_files: the json files (or tables, labelled folders, Hugging Face datasets), read in order.
        audio_root: resolves relative "audio" paths; None resolves them against each json's own folder.
        blacklist: a Blacklist, or what read_blacklist reads (a file, a folder, a list of them).
        options: caption templates, strictness and audio cache of the other formats (None: the defaults).
    """
    if isinstance(json_files, str | Path):
        json_files = [json_files]
    root = Path(audio_root).expanduser() if audio_root is not None else None
    if blacklist is not None and not isinstance(blacklist, Blacklist):
        blacklist = read_blacklist(blacklist)
    contents: list[JsonFileContents] = []
    next_clip_index = 0
    for json_file in json_files:
        contents.append(read_training_source(json_file, root, blacklist, next_clip_index, options))
        next_clip_index += contents[-1].num_clips
    return contents


def read_wavcaps_jsons(json_files: str | Path | Sequence[str | Path], audio_root: str | Path | None = None,
                       blacklist: str | Path | Sequence[str | Path] | Blacklist | None = None,
                       options: SourceOptions | None = None) -> list[CaptionItem]:
    """The kept rows of all json files (read_json_files, flattened); audio paths not yet resolved."""
    return [item for contents in read_json_files(json_files, audio_root, blacklist, options)
            for item in contents.items]
