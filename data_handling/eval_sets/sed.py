"""Sound event detection sets: strong labels from an AudioSet-strong / DESED tsv, durations, label maps.

Clip ids are file names without audio extension (data_handling/audio_paths.py's clip_id_from_filename).
Classes: the labels (through a label map when given, e.g. AudioSet MIDs -> names); each class's text (its
prompt) is the label normalised by data_handling/class_names.py with lower case ('_' -> ' '). A class is
named by its text; labels that differ but share a text (e.g. "Dog" and "dog", "dog_bark" and "dog bark") stay
separate classes, as in the reference (one score column per distinct label, both scored with the same
text), named by the labels themselves, with a UserWarning. Only identical labels are one class.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_handling.audio_paths import clip_id_from_filename
from data_handling.class_names import normalize_class_name
from data_handling.metadata_files import load_json, read_csv_records, read_durations_tsv, read_tsv_columns

SED_EVENT_COLUMNS = (("filename", "onset", "offset", "event_label"),
                     ("segment_id", "start_time_seconds", "end_time_seconds", "label"))
SED_DURATION_COLUMNS = (("filename", "duration"), ("segment_id", "duration"))
SED_EVENTS_LAYOUT = "SED tsv with header filename<TAB>onset<TAB>offset<TAB>event_label"
SED_DURATIONS_LAYOUT = "durations tsv with header filename<TAB>duration"
SED_FOLDER_LAYOUT = ("SED layout: <root>/audio/<file> and <root>/metadata/eval.tsv (filename<TAB>onset<TAB>offset<TAB>"
                     "event_label, or AudioSet-strong segment_id<TAB>start_time_seconds<TAB>end_time_seconds<TAB>"
                     "label) with <root>/metadata/eval_durations.tsv (filename<TAB>duration)")
"""The folder of a SED set, for the evaluation's error when the audio folder is missing."""
LABEL_MAP_LAYOUT = "label map: ontology.json [{\"id\", \"name\"}] or a csv/tsv of mid,name"


@dataclass
class SedAnnotations:
    """Strong labels of a SED evaluation set.

    ground_truth: clip_id -> [(onset, offset, class_name), ...] (may be empty; events as in the file,
        same-class overlaps are merged later by tools.eval.sed_metrics).
    durations: clip_id -> seconds.
    class_names: sorted class names (the score columns): a label's text, or the (mapped) label itself where
        several labels share that text.
    label_to_class: raw label of the tsv -> class name.
    class_texts: class name -> its text, the normalised label the model is prompted with (several classes
        may share one).
    audio_files: clip_id -> file name as written in the durations tsv.
    num_skipped: event rows skipped (empty label, unparsable times, onset >= offset).
    """

    ground_truth: dict[str, list[tuple[float, float, str]]]
    durations: dict[str, float]
    class_names: list[str]
    label_to_class: dict[str, str]
    audio_files: dict[str, str] = field(default_factory=dict)
    num_skipped: int = 0
    class_texts: dict[str, str] = field(default_factory=dict)

    def text_of(self, class_name: str) -> str:
        """The text a class is scored with (the class name itself when not recorded)."""
        return self.class_texts.get(class_name, class_name)


# ----------------------------------------------------------------------------------------------------
# Label maps
# ----------------------------------------------------------------------------------------------------
def load_label_map(path: str | Path) -> dict[str, str]:
    """Raw label (e.g. AudioSet MID) -> display name.

    Accepts an AudioSet ontology.json ([{"id": mid, "name": name}, ...]) or a flat json object
    {mid: name}; or a csv (comma) / tsv (tab) either with a header naming "mid" and "display_name" or
    "name" columns (e.g. class_labels_indices.csv) or with two columns mid,name and no header.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        return _label_map_from_json(load_json(path, "label map", LABEL_MAP_LAYOUT), path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = [row for _, row in read_csv_records(path, "label map", LABEL_MAP_LAYOUT, delimiter=delimiter)]
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


# ----------------------------------------------------------------------------------------------------
# Events and durations
# ----------------------------------------------------------------------------------------------------
def _read_durations(path: Path) -> tuple[dict[str, float], dict[str, str]]:
    """clip_id -> duration and clip_id -> file name from a durations tsv (filename\\tduration)."""
    rows = read_durations_tsv(path, "SED durations tsv", SED_DURATION_COLUMNS, SED_DURATIONS_LAYOUT)
    durations = {clip_id_from_filename(filename): seconds for filename, seconds in rows}
    files = {clip_id_from_filename(filename): filename for filename, _ in rows}
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
                   ) -> tuple[dict[str, str], dict[str, str]]:
    """(raw label -> class name, class name -> text), through label_map when given.

    A label's text is its normalised form; the class is named by that text unless other (mapped) labels
    share it, then by the mapped label itself: labels are only merged when identical (after the map).
    """
    raw_labels = sorted(set(raw_labels))
    if label_map is not None:
        unmapped = [raw for raw in raw_labels if raw not in label_map]
        if unmapped:
            raise ValueError(f"{source}: {len(unmapped)} label(s) missing from the label map, e.g. {unmapped[:5]}")
    mapped = {raw: label_map[raw] if label_map is not None else raw for raw in raw_labels}
    text_of = {label: normalize_class_name(label, lower=True) for label in sorted(set(mapped.values()))}
    labels_per_text = Counter(text_of.values())
    shared = sorted(label for label, text in text_of.items() if labels_per_text[text] > 1)
    if shared:
        warnings.warn(f"{source}: labels {shared[:10]} differ but share a text after lower case and '_' -> ' '; "
                      f"kept as separate classes (as the reference), each scored with its shared text",
                      UserWarning, stacklevel=3)
    class_of = {label: label if labels_per_text[text] > 1 else text for label, text in text_of.items()}
    return ({raw: class_of[mapped[raw]] for raw in raw_labels},
            {class_of[label]: text for label, text in text_of.items()})


def read_sed_tsv(tsv_path: str | Path, durations_tsv: str | Path,
                 label_map: Mapping[str, str] | None = None) -> SedAnnotations:
    """Strong labels from a DESED / AudioSet-strong tsv and a durations tsv.

    Event tsv header: filename, onset, offset, event_label (DESED), or segment_id, start_time_seconds,
    end_time_seconds, label (AudioSet strong). Durations tsv header: filename (or segment_id), duration.
    Rows with an empty label, unparsable times or onset >= offset are skipped and counted (their clip is
    still listed, possibly without events). Every clip with an event needs a duration; clips listed only
    in the durations tsv get an empty event list.
    """
    tsv_path, durations_tsv = Path(tsv_path), Path(durations_tsv)
    rows = read_tsv_columns(tsv_path, "SED tsv", SED_EVENT_COLUMNS, SED_EVENTS_LAYOUT)
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
    label_to_class, class_texts = _label_classes((label for events in raw_events.values() for *_, label in events),
                                                 label_map, tsv_path)
    ground_truth = {clip: [(on, off, label_to_class[label]) for on, off, label in events]
                    for clip, events in raw_events.items()}
    return SedAnnotations(ground_truth=ground_truth, durations=durations,
                          class_names=sorted(set(label_to_class.values())), label_to_class=label_to_class,
                          audio_files=audio_files, num_skipped=num_skipped, class_texts=class_texts)
