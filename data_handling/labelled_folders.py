"""A folder of class folders: each sub-folder is a class, named by its folder, and holds that class's audio
files (at any depth below it). Classes are taken in sorted order of their names, files in sorted order of
their paths; hidden folders and files that are not audio (data_handling.audio_paths.AUDIO_EXTENSIONS) are
left out.

    dogs_and_rain/
        dog_bark/  001.wav  002.flac
        rain/      a.wav    more/b.wav
"""

from __future__ import annotations

from pathlib import Path

from data_handling.audio_paths import AUDIO_EXTENSIONS, clip_id_from_filename
from data_handling.source_records import SourceRecord

LABELLED_FOLDER_LAYOUT = "a folder with one sub-folder per class, each holding that class's audio files"


def class_folders(root: str | Path) -> list[Path]:
    """The class folders of `root`, sorted by name; fewer than two raise ValueError."""
    root = Path(root)
    folders = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if len(folders) < 2:
        raise ValueError(f"{root}: found {len(folders)} class folder(s) {[path.name for path in folders]}; "
                         f"expected {LABELLED_FOLDER_LAYOUT}, with at least two classes")
    return folders


def read_labelled_folder(root: str | Path) -> list[SourceRecord]:
    """One record per audio file, labelled with its class folder's name (the folder name as it stands;
    captions and prompts turn '_' into ' ')."""
    root = Path(root)
    records: list[SourceRecord] = []
    for folder in class_folders(root):
        files = sorted(path for path in folder.rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS
                       and path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts))
        for path in files:
            relative = path.relative_to(root).as_posix()
            records.append(SourceRecord(path, relative, clip_id_from_filename(path.name), f"{root}, {relative}",
                                        labels=[folder.name]))
    return records
