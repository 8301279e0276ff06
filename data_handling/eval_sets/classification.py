"""Classification sets: ESC-50, UrbanSound8K (folds) and VGGSound's test split (two csv layouts).

Class names: the dataset's names normalised by data_handling/class_names.py ('_' -> ' '); names that
coincide after that are merged into one class, with a UserWarning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from data_handling.audio_paths import audio_files_by_stem, check_audio_exists
from data_handling.class_names import merge_class_names
from data_handling.metadata_files import parse_int, read_csv_dicts, read_csv_records

ESC50_LAYOUT = "ESC-50 layout: <root>/meta/esc50.csv (filename,fold,target,category,...) and <root>/audio/"
US8K_LAYOUT = ("UrbanSound8K layout: <root>/metadata/UrbanSound8K.csv (slice_file_name,fsID,start,end,"
               "salience,fold,classID,class) and <root>/audio/fold<fold>/")
VGGSOUND_CSV_LAYOUT = "VGGSound csv without header: youtube_id,start_seconds,label,split"
VGGSOUND_TEST_CSV_LAYOUT = "VGGSound test csv without header: filename,class"


@dataclass(frozen=True)
class ClassificationItem:
    """One clip of a classification set; class_index indexes the reader's class_names."""

    audio_path: Path
    class_name: str
    fold: int | None
    class_index: int


class ClassificationSet(NamedTuple):
    """ESC-50 / UrbanSound8K: the clips and the class names (index = class_index)."""

    items: list[ClassificationItem]
    class_names: list[str]


class VggSoundSet(NamedTuple):
    """VGGSound test split: the clips found, the class names, how many listed clips had no file and the paths
    looked for of those."""

    items: list[ClassificationItem]
    class_names: list[str]
    num_missing: int
    missing: list[str]


# ----------------------------------------------------------------------------------------------------
# ESC-50, UrbanSound8K: csv with a header, numeric class ids, folds
# ----------------------------------------------------------------------------------------------------
class _FoldRow(NamedTuple):
    audio_path: Path
    fold: int
    class_id: int
    raw_name: str


def _classes_by_index(rows: Sequence[_FoldRow], source: Path) -> tuple[list[str], dict[int, int]]:
    """Class names ordered by numeric class id; returns names and class id -> index into names."""
    name_of_id: dict[int, str] = {}
    for row in rows:
        if name_of_id.setdefault(row.class_id, row.raw_name) != row.raw_name:
            raise ValueError(f"{source}: class id {row.class_id} has two names, {name_of_id[row.class_id]!r} "
                             f"and {row.raw_name!r}")
    ordered_ids = sorted(name_of_id)
    class_names, raw_to_index = merge_class_names(name_of_id[class_id] for class_id in ordered_ids)
    return class_names, {class_id: raw_to_index[name_of_id[class_id]] for class_id in ordered_ids}


def _fold_set(rows: list[_FoldRow], csv_path: Path, check_audio: bool) -> ClassificationSet:
    """ClassificationSet of the csv's rows, classes ordered by class id."""
    class_names, index_of_id = _classes_by_index(rows, csv_path)
    items = [ClassificationItem(audio_path=row.audio_path, class_name=class_names[index_of_id[row.class_id]],
                                fold=row.fold, class_index=index_of_id[row.class_id]) for row in rows]
    if check_audio:
        check_audio_exists((item.audio_path for item in items), csv_path)
    return ClassificationSet(items, class_names)


def read_esc50(root: str | Path, check_audio: bool = True) -> ClassificationSet:
    """ESC-50: <root>/meta/esc50.csv and <root>/audio/<filename>.

    Class names are the categories with '_' -> ' ', ordered by `target`; folds as in the csv (1..5).
    """
    root = Path(root)
    csv_path = root / "meta" / "esc50.csv"
    rows = read_csv_dicts(csv_path, "ESC-50 csv", ("filename", "fold", "target", "category"), ESC50_LAYOUT)
    return _fold_set([_FoldRow(root / "audio" / row["filename"], parse_int(row["fold"], csv_path, line, "fold"),
                               parse_int(row["target"], csv_path, line, "target"), row["category"])
                      for line, row in enumerate(rows, start=2)], csv_path, check_audio)


def read_urbansound8k(root: str | Path, check_audio: bool = True) -> ClassificationSet:
    """UrbanSound8K: <root>/metadata/UrbanSound8K.csv and <root>/audio/fold<fold>/<slice_file_name>.

    Class names are the bare classes with '_' -> ' ', ordered by classID; folds 1..10.
    """
    root = Path(root)
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    rows = read_csv_dicts(csv_path, "UrbanSound8K csv", ("slice_file_name", "fold", "classID", "class"),
                          US8K_LAYOUT)
    fold_rows = []
    for line, row in enumerate(rows, start=2):
        fold = parse_int(row["fold"], csv_path, line, "fold")
        fold_rows.append(_FoldRow(root / "audio" / f"fold{fold}" / row["slice_file_name"], fold,
                                  parse_int(row["classID"], csv_path, line, "classID"), row["class"]))
    return _fold_set(fold_rows, csv_path, check_audio)


# ----------------------------------------------------------------------------------------------------
# VGGSound: csv without header, class names sorted, clips without a file skipped and counted
# ----------------------------------------------------------------------------------------------------
def _vggsound_set(labelled_paths: Sequence[tuple[Path | None, str, Path]]) -> VggSoundSet:
    """VggSoundSet of (audio path or None when missing, raw label, the path looked for first) per listed clip;
    classes sorted."""
    class_names, raw_to_index = merge_class_names(sorted({label for _, label, _ in labelled_paths}))
    items = [ClassificationItem(audio_path=path, class_name=class_names[raw_to_index[label]], fold=None,
                                class_index=raw_to_index[label])
             for path, label, _ in labelled_paths if path is not None]
    missing = [str(wanted) for path, _, wanted in labelled_paths if path is None]
    return VggSoundSet(items, class_names, len(missing), missing)


def _require_audio_dir(audio_dir: Path, expected: str) -> None:
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"VGGSound audio folder {audio_dir} not found (expected {expected})")


def read_vggsound(csv_path: str | Path, audio_dir: str | Path) -> VggSoundSet:
    """VGGSound test split from vggsound.csv (no header: youtube_id,start_seconds,label,split).

    Audio files are `{youtube_id}_{start_seconds:06d}.{wav|flac|mp3|ogg}` in `audio_dir` (the first
    existing extension in that order, AUDIO_EXTENSIONS). Listed clips without a file are skipped and
    counted. Class names: the sorted labels of the test split ('_' -> ' '). No folds.
    """
    csv_path, audio_dir = Path(csv_path), Path(audio_dir)
    rows = []
    for line, record in read_csv_records(csv_path, "VGGSound csv", VGGSOUND_CSV_LAYOUT, num_fields=4):
        youtube_id, start, label, split = (value.strip() for value in record)
        if split == "test":
            rows.append((youtube_id, parse_int(start, csv_path, line, "start_seconds"), label))
    _require_audio_dir(audio_dir, "files named <youtube_id>_<start_seconds:06d>.wav|flac|mp3")
    if not rows:
        raise ValueError(f"{csv_path} has no row with split \"test\"")
    files = audio_files_by_stem(audio_dir)
    stems = [f"{youtube_id}_{start:06d}" for youtube_id, start, _ in rows]
    return _vggsound_set([(files.get(stem), label, audio_dir / f"{stem}.wav")
                          for stem, (_, _, label) in zip(stems, rows, strict=True)])


def read_vggsound_test_csv(csv_path: str | Path, audio_dir: str | Path) -> VggSoundSet:
    """VGGSound test split in the reference's layout: a csv of two columns without header (filename, class).

    Audio: `audio_dir/<filename without its 4-character extension>.wav`, the file the reference opens (so a
    clip.mp4 listed beside clip.wav is read from clip.wav); else `audio_dir/<filename>`; else a file with the
    same stem and an audio extension. Listed clips without a file are skipped and counted. Class names: the
    sorted classes ('_' -> ' '). No folds.
    """
    csv_path, audio_dir = Path(csv_path), Path(audio_dir)
    rows = [record for _, record in read_csv_records(csv_path, "VGGSound test csv", VGGSOUND_TEST_CSV_LAYOUT,
                                                     num_fields=2)]
    if not rows:
        raise ValueError(f"{csv_path} lists no clip ({VGGSOUND_TEST_CSV_LAYOUT})")
    _require_audio_dir(audio_dir, f"the files named in {csv_path}")
    files = audio_files_by_stem(audio_dir)
    labelled_paths = []
    for filename, label in rows:
        filename = filename.strip()
        reference_wav = audio_dir / f"{filename[:-4]}.wav"
        audio_path: Path | None = next((path for path in (reference_wav, audio_dir / filename) if path.is_file()),
                                       None)
        if audio_path is None:
            audio_path = files.get(Path(filename).stem) or files.get(filename)
        labelled_paths.append((audio_path, label.strip(), reference_wav))
    return _vggsound_set(labelled_paths)


# ----------------------------------------------------------------------------------------------------
# Your own labelled clips: a folder of class folders, a CSV/TSV audio,label[,fold], a Hugging Face dataset
# ----------------------------------------------------------------------------------------------------
CUSTOM_LAYOUT = ("a folder of class folders, a CSV/TSV with the columns audio,label[,fold], or a Hugging Face "
                 "dataset with an audio and a label column")


def read_custom_classification(path: str | Path) -> ClassificationSet:
    """Labelled clips in any format of data_handling.caption_sources: classes in sorted order of their names
    (normalised and merged as the other sets'), folds from a `fold` column (every clip or none).

    Raises:
        ValueError: a clip with several labels or none, fewer than two classes, folds on some clips only,
        or a layout error of the format (a missing column).
    """
    from data_handling.caption_sources import read_source_records

    records = read_source_records(path, need="label")
    labels: list[str] = []
    for record in records:
        names = [label.strip() for label in record.labels if label.strip()]
        if len(names) != 1:
            raise ValueError(f"{record.where}: expected one label per clip for classification, found {names}")
        labels.append(names[0])
    class_names, raw_to_index = merge_class_names(sorted(set(labels)))
    if len(class_names) < 2:
        raise ValueError(f"{path}: found {len(class_names)} class(es) {class_names}; classification needs at least "
                         f"two ({CUSTOM_LAYOUT})")
    with_fold = [record.fold is not None for record in records]
    if any(with_fold) and not all(with_fold):
        first = records[with_fold.index(False)]
        raise ValueError(f"{first.where}: no fold, while other clips have one; give every clip a fold or none")
    items = [ClassificationItem(record.audio_path, class_names[raw_to_index[label]], record.fold,
                                raw_to_index[label]) for record, label in zip(records, labels, strict=True)]
    return ClassificationSet(items, class_names)
