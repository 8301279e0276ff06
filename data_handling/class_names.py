"""Class names of the evaluation sets: one normalisation for the dataset readers and the zero-shot prompts.

A class name is normalised by turning '_' into ' ' and collapsing whitespace (SED labels are also
lower-cased); an empty result is an error. Three ways to deal with names that coincide once normalised:
- merge_class_names (the classification readers): they become one class, with a UserWarning; the merged
  class keeps the position of its first raw name (e.g. "dog_bark" and "dog bark" in an ESC-50 csv);
- the SED reader (data_handling/eval_sets/sed.py) keeps them apart, as the reference: separate classes
  (score columns) scored with the same text;
- normalize_class_names (a list given to the classification protocol): ValueError, since two prompts
  would be the same text.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

MAX_LISTED = 10
"""Class names (or positions) named in an error message."""
CLASSIFICATION_PROMPT = "{} can be heard"
"""The zero-shot classification prompt of ESC-50 and VGGSound ('{}': the class name); also the default caption
template of labelled training clips (data_args.caption_templates)."""


def _normalized_text(raw: object, lower: bool) -> str:
    """'_' -> ' ', whitespace collapsed, optionally lower-cased; may be empty."""
    name = " ".join(str(raw).replace("_", " ").split())
    return name.lower() if lower else name


def normalize_class_name(raw: object, lower: bool = False) -> str:
    """'_' -> ' ', whitespace collapsed, optionally lower-cased; an empty result raises ValueError."""
    name = _normalized_text(raw, lower)
    if not name:
        raise ValueError(f"empty class name (raw value {raw!r})")
    return name


def normalize_class_names(class_names: Sequence[str]) -> list[str]:
    """normalize_class_name of each name, in order; empty or duplicate names (after it) raise ValueError."""
    names = [_normalized_text(name, lower=False) for name in class_names]
    empty = [position for position, name in enumerate(names) if not name]
    if empty:
        raise ValueError(f"class names at positions {empty[:MAX_LISTED]} are empty; every class needs a name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"class names {duplicates[:MAX_LISTED]} appear more than once (after '_' -> ' '); merge "
                         f"the classes or rename them so that every prompt is distinct")
    return names


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
