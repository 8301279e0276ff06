"""Caption preprocessing: the reference's rule by default, for training and retrieval evaluation alike.

style="reference" (the default) is what the reference applied before the tokenizer, applied in order:
1. lower case (str.lower);
2. a whitespace character in front of one of , . ! ? ; : " is removed when that mark is followed by
   whitespace or ends the caption ("dog , cat" -> "dog, cat"); the matches do not overlap, so in
   "a , , b" only the first comma's space goes; then every double space becomes one, in one
   left-to-right pass (str.replace: three spaces become two);
3. each of ( , . ! ? ; : | * " ) becomes a space; then again one left-to-right pass of double space ->
   single space.
Nothing else changes: hyphens, apostrophes, slashes, brackets other than (), ampersands, underscores,
tabs and newlines stay, and leading or trailing spaces are not stripped (the tokenizer ignores them).

style="words" is this project's earlier rule: every character that is not a letter, digit, whitespace
or in-word apostrophe becomes a space ("high-pitched" -> "high pitched"), curly apostrophes become
"'", whitespace runs collapse to one space and the ends are stripped. It changes the token sequence
of captions with hyphens or slashes, so a model trained with it is not the reference's.
"""

from __future__ import annotations

import re

CAPTION_STYLES = ("reference", "words")

# style="reference"
_SPACE_BEFORE_MARK = re.compile(r'\s([,.!?;:"](?:\s|$))')  # the space is dropped, the group kept
_REMOVED_MARKS = re.compile(r'[(,.!?;:|*")]')

# style="words"
_APOSTROPHE_VARIANTS = re.compile(r"[\u2018\u2019\u201b\u02bc`\u00b4]")
_NOT_WORD_SPACE_OR_APOSTROPHE = re.compile(r"[^\w\s']|_")
_APOSTROPHE_OUTSIDE_WORD = re.compile(r"(?<![^\W_])'|'(?![^\W_])")
_WHITESPACE_RUN = re.compile(r"\s+")


def _reference_style(text: str) -> str:
    text = _SPACE_BEFORE_MARK.sub(r"\1", text.lower()).replace("  ", " ")
    return _REMOVED_MARKS.sub(" ", text).replace("  ", " ")


def _words_style(text: str) -> str:
    text = _APOSTROPHE_VARIANTS.sub("'", text.lower())
    text = _NOT_WORD_SPACE_OR_APOSTROPHE.sub(" ", text)
    text = _APOSTROPHE_OUTSIDE_WORD.sub(" ", text)
    return _WHITESPACE_RUN.sub(" ", text).strip()


def preprocess_caption(text: str, style: str = "reference") -> str:
    """Normalise one caption before tokenisation (rules in the module docstring).

    Examples (style="reference"):
        'A dog barks , then "someone\u2019s" car-alarm goes off!'
            -> 'a dog barks then someone\u2019s car-alarm goes off '
        "a , , b" -> "a  b" (only the first comma loses its space; four spaces, one pass, leave two)
        "a   b" -> "a b" (two passes of the double-space rule: three spaces -> two -> one)

    Raises:
        TypeError: text is not a str.
        ValueError: style is not one of CAPTION_STYLES.
    """
    if not isinstance(text, str):
        raise TypeError(f"a caption must be a str, got {type(text).__name__}: {text!r}")
    if style == "reference":
        return _reference_style(text)
    if style == "words":
        return _words_style(text)
    raise ValueError(f"caption style must be one of {list(CAPTION_STYLES)}, got {style!r}")
