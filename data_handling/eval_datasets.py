"""Readers for the evaluation dataset layouts: retrieval json, ESC-50, UrbanSound8K, VGGSound, SED tsv
(AudioSet-strong / DESED) and AudioGrounding json, and `find_eval_files`, which detects where a set lies
under eval.data_root_dir: the reference's parent folder of every dataset (ESC-50-master/, UrbanSound8K/,
VGGSound/, AudioSet_SL/, TAG/test/) or a dataset's own folder (`EVAL_LAYOUTS`).

Every reader returns plain python structures and raises FileNotFoundError / ValueError that names the
expected path and layout when something is missing or malformed.

Class names: '_' becomes ' ' and whitespace is collapsed (SED labels are also lower-cased); an empty
class name is an error. When two raw names become the same class after this normalisation (e.g.
"Dog" and "dog" in a SED tsv), they are merged into one class and a UserWarning says so; the merged
class keeps the position of its first raw name.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
"""Audio file extensions, in order of preference when several files share a name."""

ESC50_LAYOUT = "ESC-50 layout: <root>/meta/esc50.csv (filename,fold,target,category,...) and <root>/audio/"
US8K_LAYOUT = ("UrbanSound8K layout: <root>/metadata/UrbanSound8K.csv (slice_file_name,fsID,start,end,"
               "salience,fold,classID,class) and <root>/audio/fold<fold>/")
SED_EVENT_COLUMNS = (("filename", "onset", "offset", "event_label"),
                     ("segment_id", "start_time_seconds", "end_time_seconds", "label"))
SED_DURATION_COLUMNS = (("filename", "duration"), ("segment_id", "duration"))


# ----------------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrievalItem:
    """One audio clip of a retrieval test set with its captions; `id` is informational (it may repeat)."""

    audio_path: Path
    captions: list[str]
    id: str


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
    """VGGSound test split: the clips found, the class names and how many listed clips had no file."""

    items: list[ClassificationItem]
    class_names: list[str]
    num_missing: int


@dataclass
class SedAnnotations:
    """Strong labels of a SED evaluation set.

    ground_truth: clip_id -> [(onset, offset, class_name), ...] (may be empty; events as in the file,
        same-class overlaps are merged later by tools.eval.sed_metrics).
    durations: clip_id -> seconds.
    class_names: sorted normalised class names.
    label_to_class: raw label of the tsv -> class name.
    audio_files: clip_id -> file name as written in the durations tsv.
    num_skipped: event rows skipped (empty label, unparsable times, onset >= offset).
    """

    ground_truth: dict[str, list[tuple[float, float, str]]]
    durations: dict[str, float]
    class_names: list[str]
    label_to_class: dict[str, str]
    audio_files: dict[str, str] = field(default_factory=dict)
    num_skipped: int = 0


@dataclass(frozen=True)
class GroundingPhrase:
    """One phrase of an AudioGrounding caption; segments in seconds without [0, 0] placeholders."""

    phrase_id: str
    audio_id: str
    audiocap_id: str
    phrase: str
    start_index: int
    end_index: int | None
    segments: list[tuple[float, float]]


# ----------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------
def normalize_class_name(raw: str, lower: bool = False) -> str:
    """'_' -> ' ', whitespace collapsed, optionally lower-cased; an empty result raises ValueError."""
    name = " ".join(str(raw).replace("_", " ").split())
    if lower:
        name = name.lower()
    if not name:
        raise ValueError(f"empty class name (raw value {raw!r})")
    return name


def merge_class_names(raw_names: Iterable[str], lower: bool = False) -> tuple[list[str], dict[str, int]]:
    """Normalise raw class names in order and merge those that coincide after normalisation.

    Returns:
        class_names (unique, in order of first appearance), raw name -> index into class_names.
    """
    class_names: list[str] = []
    raw_to_index: dict[str, int] = {}
    for raw in raw_names:
        name = normalize_class_name(raw, lower)
        if name in class_names:
            if raw not in raw_to_index:
                warnings.warn(f"class {raw!r} becomes {name!r} like an earlier class; merged into one class",
                              UserWarning, stacklevel=3)
        else:
            class_names.append(name)
        raw_to_index[raw] = class_names.index(name)
    return class_names, raw_to_index


def clip_id_from_filename(filename: str) -> str:
    """Clip id as sed_scores_eval names clips: the file name without its audio extension.

    Only a known audio extension is stripped, so ids without extension that contain dots (e.g.
    "Y-abc_0.000_10.000") are kept whole; for names ending in .wav etc. this equals sed_scores_eval's
    `filename.rsplit('.', 1)[0]`.
    """
    name = Path(str(filename).strip()).name
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in AUDIO_EXTENSIONS else name


def _require_file(path: Path, layout: str) -> Path:
    """Raise FileNotFoundError naming `path` and the expected layout if it is not a file."""
    if not path.is_file():
        raise FileNotFoundError(f"expected file {path} not found ({layout})")
    return path


def _read_csv_rows(path: Path, required: Sequence[str], layout: str, delimiter: str = ",") -> list[dict]:
    """Rows of a csv/tsv with a header as dicts; raise if a required column is missing."""
    _require_file(path, layout)
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file, delimiter=delimiter)
        columns = reader.fieldnames or []
        missing = [column for column in required if column not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {columns} ({layout})")
        return list(reader)


def _parse_int(value: Any, path: Path, line: int, column: str) -> int:
    """int(value) or a ValueError naming file, line and column."""
    try:
        return int(float(value))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}, line {line}: column {column!r} must be an integer, got {value!r}") from error


def _duplicates(values: Iterable[str]) -> list[str]:
    """Sorted values that occur more than once."""
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _check_audio_exists(paths: Iterable[Path], source: Path) -> None:
    """Raise FileNotFoundError listing the first missing audio files of a metadata file."""
    missing = [path for path in paths if not path.is_file()]
    if missing:
        examples = ", ".join(str(path) for path in missing[:5])
        raise FileNotFoundError(f"{len(missing)} audio file(s) listed in {source} are missing, e.g. {examples}")


# ----------------------------------------------------------------------------------------------------
# Retrieval (Clotho / AudioCaps json)
# ----------------------------------------------------------------------------------------------------
def _captions_of(entry: Mapping[str, Any], path: Path, position: int) -> list[str]:
    """The captions of one json entry: "caption" (list or str) or "caption_1".."caption_N"."""
    if "caption" in entry:
        captions = entry["caption"]
        captions = [captions] if isinstance(captions, str) else list(captions)
    else:
        keys = [key for key in entry if key.startswith("caption_") and key[len("caption_"):].isdigit()]
        captions = [entry[key] for key in sorted(keys, key=lambda key: int(key[len("caption_"):]))]
    if not captions or not all(isinstance(text, str) and text.strip() for text in captions):
        raise ValueError(f"{path}: data[{position}] needs non-empty captions as \"caption_1\"..\"caption_N\" "
                         f"or a \"caption\" list, got keys {sorted(entry)}")
    return captions


def _load_json(path: Path, layout: str) -> Any:
    """json.load with errors that name the file."""
    _require_file(path, layout)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid json ({layout}): {error}") from error


def read_retrieval_json(path: str | Path, audio_root: str | Path | None = None, check_audio: bool = True,
                        search_roots: Sequence[str | Path] = ()) -> list[RetrievalItem]:
    """Read a Clotho/AudioCaps-style retrieval json (WavCaps' retrieval test files).

    Layout: {"num_captions_per_audio": 5, "data": [{"id"?: ..., "audio": path, "wav"?: relative path,
    "caption_1": .., "caption_5": ..} or {"audio": path, "caption": [..]}]}. Clips are numbered by their
    position in "data"; "id" is informational only (it may repeat: the Clotho test file has five "Not
    found"); a missing "id" becomes the audio file name without extension. When "num_captions_per_audio"
    is given every entry must have that many captions.

    Audio paths, the first that exists (`resolve_retrieval_audio`): "audio" as it stands (the reference
    reads it so; in WavCaps' files it is an absolute path of the authors' machine; a relative path starts
    at `audio_root`, default the json's folder); the relative "wav" path under `audio_root` (without one:
    the json's folder or any folder above it) or a search root; the file name in `audio_root` (default:
    the json's folder) or a search root. When none exists the item keeps the "audio" path, which the
    evaluation reports as missing (skipped and counted).

    Args:
        check_audio: raise FileNotFoundError if a listed audio file cannot be found.
        search_roots: further folders (e.g. eval.data_root_dir) that "wav" paths and file names are tried in.
    """
    path = Path(path)
    layout = 'retrieval json layout: {"num_captions_per_audio": N, "data": [{"audio": ..., "caption_1": ...}]}'
    content = _load_json(path, layout)
    if not isinstance(content, dict) or not isinstance(content.get("data"), list):
        raise ValueError(f"{path}: expected a json object with a \"data\" list ({layout})")
    roots = _retrieval_roots(path, audio_root, search_roots)
    expected_count = content.get("num_captions_per_audio")
    items = [_retrieval_item(entry, position, path, roots, expected_count)
             for position, entry in enumerate(content["data"])]
    if check_audio:
        _check_audio_exists((item.audio_path for item in items), path)
    return items


class RetrievalRoots(NamedTuple):
    """Where a retrieval json's audio is looked for (`resolve_retrieval_audio`)."""

    audio_root: Path
    """where relative "audio" paths start; its files are also found by name"""
    wav_roots: list[Path]
    """where relative "wav" paths are tried, in order"""
    name_roots: list[Path]
    """where bare file names are tried, in order"""


def _retrieval_roots(json_path: Path, audio_root: str | Path | None, search_roots: Sequence[str | Path]
                     ) -> RetrievalRoots:
    """The audio root (default: the json's folder), "wav" roots (the audio root, or without one the json's
    folder and every folder above it; then the search roots) and file-name roots (audio root, search roots)."""
    extra = [Path(root).expanduser() for root in search_roots]
    if audio_root is not None:
        root = Path(audio_root).expanduser()
        wav_roots = [root]
    else:
        root = json_path.parent
        wav_roots = [root, *json_path.resolve().parent.parents]
    return RetrievalRoots(root, list(dict.fromkeys([*wav_roots, *extra])), list(dict.fromkeys([root, *extra])))


def resolve_retrieval_audio(audio: str, wav: str | None, roots: RetrievalRoots) -> Path:
    """The audio file of a retrieval json entry, the first that exists of: "audio" as it stands (a relative
    path under the audio root); the relative "wav" path under each wav root; the file name of "audio" or
    "wav" in each name root. When none exists, the "audio" path (the evaluation then reports it missing)."""
    given = Path(audio).expanduser()
    given = given if given.is_absolute() else roots.audio_root / given
    candidates = [given]
    if wav:
        candidates += [root / wav for root in roots.wav_roots]
    names = dict.fromkeys(name for name in (Path(audio).name, Path(wav).name if wav else "") if name)
    candidates += [root / name for root in roots.name_roots for name in names]
    return next((candidate for candidate in candidates if candidate.is_file()), given)


def _retrieval_item(entry: Any, position: int, path: Path, roots: RetrievalRoots, expected_count: int | None
                    ) -> RetrievalItem:
    """One RetrievalItem from one json entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("audio"), str):
        raise ValueError(f"{path}: data[{position}] must be an object with an \"audio\" path")
    captions = _captions_of(entry, path, position)
    if expected_count is not None and len(captions) != int(expected_count):
        raise ValueError(f"{path}: data[{position}] has {len(captions)} captions but num_captions_per_audio "
                         f"is {expected_count}")
    wav = entry.get("wav") if isinstance(entry.get("wav"), str) else None
    audio_path = resolve_retrieval_audio(entry["audio"], wav, roots)
    item_id = str(entry["id"]) if entry.get("id") is not None else clip_id_from_filename(Path(entry["audio"]).name)
    return RetrievalItem(audio_path=audio_path, captions=captions, id=item_id)


# ----------------------------------------------------------------------------------------------------
# Classification (ESC-50, UrbanSound8K, VGGSound)
# ----------------------------------------------------------------------------------------------------
def _classes_by_index(rows: Sequence[tuple[int, str]], source: Path) -> tuple[list[str], dict[int, int]]:
    """Class names ordered by numeric class id; returns names and class id -> index into names."""
    name_of_id: dict[int, str] = {}
    for class_id, raw in rows:
        if name_of_id.setdefault(class_id, raw) != raw:
            raise ValueError(f"{source}: class id {class_id} has two names, {name_of_id[class_id]!r} and {raw!r}")
    ordered_ids = sorted(name_of_id)
    class_names, raw_to_index = merge_class_names(name_of_id[class_id] for class_id in ordered_ids)
    return class_names, {class_id: raw_to_index[name_of_id[class_id]] for class_id in ordered_ids}


def read_esc50(root: str | Path, check_audio: bool = True) -> ClassificationSet:
    """ESC-50: <root>/meta/esc50.csv and <root>/audio/<filename>.

    Class names are the categories with '_' -> ' ', ordered by `target`; folds as in the csv (1..5).
    """
    root = Path(root)
    csv_path = root / "meta" / "esc50.csv"
    rows = _read_csv_rows(csv_path, ("filename", "fold", "target", "category"), ESC50_LAYOUT)
    parsed = [(row["filename"], _parse_int(row["fold"], csv_path, line, "fold"),
               _parse_int(row["target"], csv_path, line, "target"), row["category"])
              for line, row in enumerate(rows, start=2)]
    class_names, index_of_id = _classes_by_index([(target, category) for _, _, target, category in parsed],
                                                 csv_path)
    items = [ClassificationItem(audio_path=root / "audio" / filename, class_name=class_names[index_of_id[target]],
                                fold=fold, class_index=index_of_id[target])
             for filename, fold, target, _ in parsed]
    if check_audio:
        _check_audio_exists((item.audio_path for item in items), csv_path)
    return ClassificationSet(items, class_names)


def read_urbansound8k(root: str | Path, check_audio: bool = True) -> ClassificationSet:
    """UrbanSound8K: <root>/metadata/UrbanSound8K.csv and <root>/audio/fold<fold>/<slice_file_name>.

    Class names are the bare classes with '_' -> ' ', ordered by classID; folds 1..10.
    """
    root = Path(root)
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    rows = _read_csv_rows(csv_path, ("slice_file_name", "fold", "classID", "class"), US8K_LAYOUT)
    parsed = [(row["slice_file_name"], _parse_int(row["fold"], csv_path, line, "fold"),
               _parse_int(row["classID"], csv_path, line, "classID"), row["class"])
              for line, row in enumerate(rows, start=2)]
    class_names, index_of_id = _classes_by_index([(class_id, name) for _, _, class_id, name in parsed], csv_path)
    items = [ClassificationItem(audio_path=root / "audio" / f"fold{fold}" / filename,
                                class_name=class_names[index_of_id[class_id]], fold=fold,
                                class_index=index_of_id[class_id])
             for filename, fold, class_id, _ in parsed]
    if check_audio:
        _check_audio_exists((item.audio_path for item in items), csv_path)
    return ClassificationSet(items, class_names)


def _audio_files_by_stem(audio_dir: Path) -> dict[str, Path]:
    """File stem -> path of the audio files in a folder, preferring wav, flac, mp3, ogg in that order."""
    by_stem: dict[str, Path] = {}
    candidates = [path for path in audio_dir.iterdir() if path.suffix.lower() in AUDIO_EXTENSIONS]
    for path in sorted(candidates, key=lambda path: -AUDIO_EXTENSIONS.index(path.suffix.lower())):
        by_stem[path.stem] = path
    return by_stem


def _vggsound_test_rows(csv_path: Path) -> list[tuple[str, int, str]]:
    """(youtube_id, start_seconds, label) of the rows whose split is "test"."""
    layout = "VGGSound csv without header: youtube_id,start_seconds,label,split"
    _require_file(csv_path, layout)
    rows = []
    with csv_path.open(newline="", encoding="utf-8") as file:
        for line, row in enumerate(csv.reader(file), start=1):
            if not row:
                continue
            if len(row) != 4:
                raise ValueError(f"{csv_path}, line {line}: expected 4 fields ({layout}), got {row}")
            youtube_id, start, label, split = (value.strip() for value in row)
            if split == "test":
                rows.append((youtube_id, _parse_int(start, csv_path, line, "start_seconds"), label))
    return rows


def read_vggsound(csv_path: str | Path, audio_dir: str | Path) -> VggSoundSet:
    """VGGSound test split from vggsound.csv (no header: youtube_id,start_seconds,label,split).

    Audio files are `{youtube_id}_{start_seconds:06d}.{wav|flac|mp3|ogg}` in `audio_dir` (the first
    existing extension in that order). Listed clips without a file are skipped and counted. Class
    names: the sorted labels of the test split ('_' -> ' '). No folds.
    """
    csv_path, audio_dir = Path(csv_path), Path(audio_dir)
    rows = _vggsound_test_rows(csv_path)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"VGGSound audio folder {audio_dir} not found (expected files named "
                                f"<youtube_id>_<start_seconds:06d>.wav|flac|mp3)")
    if not rows:
        raise ValueError(f"{csv_path} has no row with split \"test\"")
    class_names, raw_to_index = merge_class_names(sorted({label for _, _, label in rows}))
    files = _audio_files_by_stem(audio_dir)
    items, num_missing = [], 0
    for youtube_id, start, label in rows:
        audio_path = files.get(f"{youtube_id}_{start:06d}")
        if audio_path is None:
            num_missing += 1
            continue
        index = raw_to_index[label]
        items.append(ClassificationItem(audio_path=audio_path, class_name=class_names[index], fold=None,
                                        class_index=index))
    return VggSoundSet(items, class_names, num_missing)


def read_vggsound_test_csv(csv_path: str | Path, audio_dir: str | Path) -> VggSoundSet:
    """VGGSound test split in the reference's layout: a csv of two columns without header (filename, class).

    Audio: `audio_dir/<filename>`, else a file with the same stem and an audio extension (the reference
    reads `<filename without its 4-character extension>.wav`). Listed clips without a file are skipped and
    counted. Class names: the sorted classes ('_' -> ' '). No folds.
    """
    csv_path, audio_dir = Path(csv_path), Path(audio_dir)
    layout = "VGGSound test csv without header: filename,class"
    _require_file(csv_path, layout)
    with csv_path.open(newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file) if row]
    for line, row in enumerate(rows, start=1):
        if len(row) != 2:
            raise ValueError(f"{csv_path}, line {line}: expected 2 fields ({layout}), got {row}")
    if not rows:
        raise ValueError(f"{csv_path} lists no clip ({layout})")
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"VGGSound audio folder {audio_dir} not found (expected the files named in {csv_path})")
    class_names, raw_to_index = merge_class_names(sorted({label.strip() for _, label in rows}))
    files = _audio_files_by_stem(audio_dir)
    items, num_missing = [], 0
    for filename, label in rows:
        filename = filename.strip()
        audio_path = audio_dir / filename
        if not audio_path.is_file():
            audio_path = files.get(Path(filename).stem) or files.get(filename)
        if audio_path is None:
            num_missing += 1
            continue
        index = raw_to_index[label.strip()]
        items.append(ClassificationItem(audio_path=audio_path, class_name=class_names[index], fold=None,
                                        class_index=index))
    return VggSoundSet(items, class_names, num_missing)


# ----------------------------------------------------------------------------------------------------
# Sound event detection (AudioSet-strong / DESED tsv)
# ----------------------------------------------------------------------------------------------------
def load_label_map(path: str | Path) -> dict[str, str]:
    """Raw label (e.g. AudioSet MID) -> display name.

    Accepts an AudioSet ontology.json ([{"id": mid, "name": name}, ...]) or a flat json object
    {mid: name}; or a csv (comma) / tsv (tab) either with a header naming "mid" and "display_name" or
    "name" columns (e.g. class_labels_indices.csv) or with two columns mid,name and no header.
    """
    path = Path(path)
    layout = "label map: ontology.json [{\"id\", \"name\"}] or a csv/tsv of mid,name"
    if path.suffix.lower() == ".json":
        return _label_map_from_json(_load_json(path, layout), path)
    _require_file(path, layout)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file, delimiter=delimiter) if row]
    return _label_map_from_rows(rows, path)


def _label_map_from_json(content: Any, path: Path) -> dict[str, str]:
    """Label map from an ontology list or a flat object."""
    if isinstance(content, dict):
        return {str(key): str(value) for key, value in content.items()}
    if isinstance(content, list) and all(isinstance(entry, dict) and "id" in entry and "name" in entry
                                         for entry in content):
        return {str(entry["id"]): str(entry["name"]) for entry in content}
    raise ValueError(f"{path}: expected an ontology list [{{\"id\": mid, \"name\": name}}, ...] or {{mid: name}}")


def _label_map_from_rows(rows: list[list[str]], path: Path) -> dict[str, str]:
    """Label map from csv rows, with a mid/name header or two plain columns."""
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    name_column = next((name for name in ("display_name", "name") if name in header), None)
    if "mid" in header and name_column is not None:
        mid_index, name_index = header.index("mid"), header.index(name_column)
        body = rows[1:]
    else:
        mid_index, name_index = 0, 1
        body = rows
    if not body or any(len(row) <= max(mid_index, name_index) for row in body):
        raise ValueError(f"{path}: expected rows mid,name (optionally with a header mid,display_name)")
    return {row[mid_index].strip(): row[name_index].strip() for row in body}


def _read_table(path: Path, column_sets: Sequence[Sequence[str]], layout: str) -> list[list[str]]:
    """Rows of a tsv whose header holds one of `column_sets`, reordered to that set's column order."""
    _require_file(path, layout)
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter="\t"))
    header = [cell.strip() for cell in rows[0]] if rows else []
    columns = next((names for names in column_sets if all(name in header for name in names)), None)
    if columns is None:
        raise ValueError(f"{path}: header {header} has none of the column sets {list(column_sets)} ({layout})")
    positions = [header.index(name) for name in columns]
    return [[row[pos] if pos < len(row) else "" for pos in positions] for row in rows[1:] if any(row)]


def _read_durations(path: Path) -> tuple[dict[str, float], dict[str, str]]:
    """clip_id -> duration and clip_id -> file name from a durations tsv (filename\\tduration)."""
    layout = "durations tsv with header filename<TAB>duration"
    durations, files = {}, {}
    for line, (filename, duration) in enumerate(_read_table(path, SED_DURATION_COLUMNS, layout), start=2):
        try:
            durations[clip_id_from_filename(filename)] = float(duration)
        except ValueError as error:
            raise ValueError(f"{path}, line {line}: duration must be a number, got {duration!r}") from error
        files[clip_id_from_filename(filename)] = filename.strip()
    return durations, files


def _parse_event(onset: str, offset: str, label: str) -> tuple[float, float, str] | None:
    """(onset, offset, label) or None for an empty label, unparsable times or onset >= offset."""
    try:
        onset_s, offset_s = float(onset), float(offset)
    except ValueError:
        return None
    label = label.strip()
    if not label or not onset_s < offset_s:
        return None
    return onset_s, offset_s, label


def _label_classes(raw_labels: Iterable[str], label_map: Mapping[str, str] | None, source: Path
                   ) -> dict[str, str]:
    """Raw label -> normalised class name (through label_map when given)."""
    raw_labels = sorted(set(raw_labels))
    if label_map is not None:
        unmapped = [raw for raw in raw_labels if raw not in label_map]
        if unmapped:
            raise ValueError(f"{source}: {len(unmapped)} label(s) missing from the label map, e.g. {unmapped[:5]}")
    mapped = {raw: label_map[raw] if label_map is not None else raw for raw in raw_labels}
    order = sorted(raw_labels, key=lambda raw: normalize_class_name(mapped[raw], lower=True))
    class_names, mapped_to_index = merge_class_names((mapped[raw] for raw in order), lower=True)
    return {raw: class_names[mapped_to_index[mapped[raw]]] for raw in raw_labels}


def read_sed_tsv(tsv_path: str | Path, durations_tsv: str | Path,
                 label_map: Mapping[str, str] | None = None) -> SedAnnotations:
    """Strong labels from a DESED / AudioSet-strong tsv and a durations tsv.

    Event tsv header: filename, onset, offset, event_label (DESED), or segment_id, start_time_seconds,
    end_time_seconds, label (AudioSet strong). Durations tsv header: filename (or segment_id), duration.
    Clip ids are file names without audio extension. Rows with an empty label, unparsable times or
    onset >= offset are skipped and counted (their clip is still listed, possibly without events).
    Class names: labels (mapped through `label_map` when given, e.g. MIDs -> names) with '_' -> ' ',
    lower case, sorted. Every clip with an event needs a duration; clips listed only in the
    durations tsv get an empty event list.
    """
    tsv_path, durations_tsv = Path(tsv_path), Path(durations_tsv)
    layout = "SED tsv with header filename<TAB>onset<TAB>offset<TAB>event_label"
    rows = _read_table(tsv_path, SED_EVENT_COLUMNS, layout)
    durations, audio_files = _read_durations(durations_tsv)
    raw_events: dict[str, list[tuple[float, float, str]]] = {clip: [] for clip in durations}
    num_skipped = 0
    for filename, onset, offset, label in rows:
        clip = clip_id_from_filename(filename)
        event = _parse_event(onset, offset, label)
        raw_events.setdefault(clip, [])
        if event is None:
            num_skipped += 1
        else:
            raw_events[clip].append(event)
    without_duration = sorted(set(raw_events) - set(durations))
    if without_duration:
        raise ValueError(f"{len(without_duration)} clip(s) of {tsv_path} have no duration in {durations_tsv}, "
                         f"e.g. {without_duration[:5]}")
    label_to_class = _label_classes((label for events in raw_events.values() for *_, label in events),
                                    label_map, tsv_path)
    ground_truth = {clip: [(on, off, label_to_class[label]) for on, off, label in events]
                    for clip, events in raw_events.items()}
    return SedAnnotations(ground_truth=ground_truth, durations=durations,
                          class_names=sorted(set(label_to_class.values())), label_to_class=label_to_class,
                          audio_files=audio_files, num_skipped=num_skipped)


# ----------------------------------------------------------------------------------------------------
# Text-to-audio grounding (AudioGrounding json)
# ----------------------------------------------------------------------------------------------------
GROUNDING_LAYOUT = ('AudioGrounding json: [{"audio_id", "audiocap_id", "tokens", "phrases": [{"phrase", '
                    '"start_index", "end_index", "segments": [[onset, offset], ...]}]}]')


def _phrase_segments(segments: Any, where: str) -> list[tuple[float, float]]:
    """Segments in seconds without [0, 0] placeholders (and other empty ones, with a warning)."""
    kept, num_empty = [], 0
    for segment in segments or []:
        if not isinstance(segment, list | tuple) or len(segment) != 2:
            raise ValueError(f"{where}: each segment must be [onset, offset], got {segment!r}")
        onset, offset = float(segment[0]), float(segment[1])
        if offset > onset:
            kept.append((onset, offset))
        elif (onset, offset) != (0.0, 0.0):
            num_empty += 1
    if num_empty:
        warnings.warn(f"{where}: dropped {num_empty} segment(s) with offset <= onset", UserWarning, stacklevel=3)
    return kept


def _grounding_phrases(entry: Any, position: int, path: Path) -> list[GroundingPhrase]:
    """The phrase records of one AudioGrounding entry."""
    if not isinstance(entry, dict) or not {"audio_id", "audiocap_id", "phrases"} <= set(entry):
        raise ValueError(f"{path}: entry {position} lacks audio_id / audiocap_id / phrases ({GROUNDING_LAYOUT})")
    phrases = []
    for phrase in entry["phrases"]:
        where = f"{path}: entry {position} (audiocap_id {entry['audiocap_id']})"
        if not isinstance(phrase, dict) or "start_index" not in phrase or "phrase" not in phrase:
            raise ValueError(f"{where}: each phrase needs \"phrase\" and \"start_index\" ({GROUNDING_LAYOUT})")
        end_index = phrase.get("end_index")
        phrases.append(GroundingPhrase(
            phrase_id=f"{entry['audiocap_id']}_{phrase['start_index']}", audio_id=str(entry["audio_id"]),
            audiocap_id=str(entry["audiocap_id"]), phrase=str(phrase["phrase"]),
            start_index=int(phrase["start_index"]), end_index=None if end_index is None else int(end_index),
            segments=_phrase_segments(phrase.get("segments"), where)))
    return phrases


def read_grounding_json(json_path: str | Path) -> list[GroundingPhrase]:
    """AudioGrounding phrases, phrase_id = f"{audiocap_id}_{start_index}" (unique, else ValueError).

    Accepts the list layout or {"data": [...]}. [0, 0] segments are dropped, so a phrase may end up
    with no segment (tools.eval.sed_metrics.grounding_psds leaves such phrases out of the evaluation).
    """
    path = Path(json_path)
    content = _load_json(path, GROUNDING_LAYOUT)
    entries = content.get("data") if isinstance(content, dict) else content
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries ({GROUNDING_LAYOUT})")
    phrases = [phrase for position, entry in enumerate(entries) for phrase in _grounding_phrases(entry, position, path)]
    duplicates = _duplicates(phrase.phrase_id for phrase in phrases)
    if duplicates:
        raise ValueError(f"{path}: duplicate phrase ids (audiocap_id_start_index) {duplicates[:5]}")
    return phrases


def read_grounding_durations(path: str | Path) -> dict[str, float]:
    """audio_id -> seconds from AudioGrounding's duration file (tab-separated, header audio_id<TAB>duration;
    "filename" is accepted for "audio_id")."""
    path = Path(path)
    layout = "grounding durations: tab-separated, header audio_id<TAB>duration"
    durations = {}
    for line, (audio_id, duration) in enumerate(
            _read_table(path, (("audio_id", "duration"), ("filename", "duration")), layout), start=2):
        try:
            durations[audio_id.strip()] = float(duration)
        except ValueError as error:
            raise ValueError(f"{path}, line {line}: duration must be a number, got {duration!r}") from error
    return durations


# ----------------------------------------------------------------------------------------------------
# Dataset layouts: where each evaluation set's files lie under eval.data_root_dir
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalLayout:
    """One way an evaluation set can lie under a root folder.

    folder: the dataset's folder relative to the root ("" = the root itself).
    files: role -> path relative to `folder` (a trailing "/" marks a folder); all must exist.
    optional: role -> path relative to `folder`, used when it exists.
    """

    description: str
    folder: str
    files: Mapping[str, str]
    optional: Mapping[str, str] = field(default_factory=dict)

    def paths(self, root: Path) -> dict[str, Path]:
        base = root / self.folder
        return {role: base / relative.rstrip("/") for role, relative in {**self.files, **self.optional}.items()}

    def matches(self, root: Path) -> bool:
        base = root / self.folder
        return all((base / relative).is_dir() if relative.endswith("/") else (base / relative).is_file()
                   for relative in self.files.values())

    def listing(self, root: Path) -> str:
        base = root / self.folder
        return f"{self.description}: " + ", ".join(str(base / relative) + ("/" if relative.endswith("/") else "")
                                                  for relative in self.files.values())


REFERENCE_PARENT = "the reference's data_root_dir (a parent folder of every dataset)"
EVAL_LAYOUTS: dict[str, tuple[EvalLayout, ...]] = {
    "esc50": (
        EvalLayout("ESC-50 folder", "", {"audio": "audio/", "csv": "meta/esc50.csv"}),
        EvalLayout(REFERENCE_PARENT, "ESC-50-master", {"audio": "audio/", "csv": "meta/esc50.csv"}),
    ),
    "urbansound8k": (
        EvalLayout("UrbanSound8K folder", "", {"audio": "audio/", "csv": "metadata/UrbanSound8K.csv"}),
        EvalLayout(REFERENCE_PARENT, "UrbanSound8K", {"audio": "audio/", "csv": "metadata/UrbanSound8K.csv"}),
    ),
    "vggsound": (
        EvalLayout("VGGSound folder with the full csv (youtube_id,start_seconds,label,split)", "",
                   {"audio": "audio/", "csv": "vggsound.csv"}),
        EvalLayout(REFERENCE_PARENT, "VGGSound", {"audio": "audio/", "test_csv": "metadata/vggsound_test.csv"}),
        EvalLayout("VGGSound folder with the test csv (filename,class)", "",
                   {"audio": "audio/", "test_csv": "metadata/vggsound_test.csv"}),
    ),
    "sed": (
        EvalLayout("SED folder", "", {"audio": "audio/", "events": "metadata/eval.tsv",
                                      "durations": "metadata/eval_durations.tsv"}),
        EvalLayout(REFERENCE_PARENT, "AudioSet_SL", {"audio": "audio/AudioSet_SL_eval/",
                                                     "events": "metadata/audioset_eval_strong.tsv",
                                                     "durations": "metadata/audioset_eval_strong_durations.tsv"}),
        EvalLayout("AudioSet_SL folder", "", {"audio": "audio/AudioSet_SL_eval/",
                                              "events": "metadata/audioset_eval_strong.tsv",
                                              "durations": "metadata/audioset_eval_strong_durations.tsv"}),
    ),
    "grounding": (
        EvalLayout("AudioGrounding folder", "", {"audio": "audio/", "json": "test.json"}),
        EvalLayout(REFERENCE_PARENT, "TAG/test", {"audio": "audio/", "json": "metadata/test.json"},
                   {"durations": "metadata/duration.csv"}),
        EvalLayout("TAG test folder", "", {"audio": "audio/", "json": "metadata/test.json"},
                   {"durations": "metadata/duration.csv"}),
    ),
    "retrieval": (
        EvalLayout("retrieval folder", "", {"json": "test.json"}),
    ),
}
"""Per task, the layouts `find_eval_files` tries, in order. Roles: audio (folder), csv / test_csv
(classification metadata), events and durations (SED tsv), json (grounding or retrieval), durations
(grounding, optional)."""


class EvalFiles(NamedTuple):
    """The files of one evaluation set: its folder, role -> path, and the layout that matched."""

    folder: Path
    paths: dict[str, Path]
    layout: str


def find_eval_files(root: str | Path, task: str) -> EvalFiles:
    """Detect which of the task's layouts (`EVAL_LAYOUTS`) lies under `root` and return its files.

    Raises:
        FileNotFoundError: `root` is not a folder, or no layout matches (the message lists every layout tried
            with its expected paths).
    """
    if task not in EVAL_LAYOUTS:
        raise ValueError(f"unknown evaluation task {task!r}; expected one of {sorted(EVAL_LAYOUTS)}")
    root = Path(root)
    layouts = EVAL_LAYOUTS[task]
    tried = "\n".join(f"  - {layout.listing(root)}" for layout in layouts)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} not found; the {task} layouts are:\n{tried}")
    for layout in layouts:
        if layout.matches(root):
            paths = {role: path for role, path in layout.paths(root).items()
                     if role in layout.files or path.exists()}
            return EvalFiles(root / layout.folder, paths, layout.description)
    raise FileNotFoundError(f"no {task} dataset found under {root}; the layouts tried (each path must exist):\n"
                            f"{tried}\nPass --data-root with the folder of one of them.")

