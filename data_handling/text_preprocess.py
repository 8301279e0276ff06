"""Caption preprocessing for training: lower case, punctuation removed, whitespace collapsed.

The reference lower-cases the training captions and replaces punctuation by spaces before the tokenizer
sees them. Rules used here (one function, so training and any caller agree):
- lower case (Unicode aware, str.lower);
- curly quotes and backticks become the plain apostrophe "'";
- every character that is neither a letter, a digit, whitespace nor an apostrophe becomes a space
  (so "high-pitched" -> "high pitched", "dog.the" -> "dog the", "10.5" -> "10 5"); the underscore too;
- an apostrophe is kept only inside a word, between two letters or digits ("dog's", "don't"); quoting
  apostrophes ("'loud'") and dangling ones ("dogs'") are removed;
- runs of whitespace become one space; leading and trailing spaces are stripped.
"""

from __future__ import annotations

import re

_APOSTROPHE_VARIANTS = re.compile(r"[\u2018\u2019\u201b\u02bc`\u00b4]")
_NOT_WORD_SPACE_OR_APOSTROPHE = re.compile(r"[^\w\s']|_")
_APOSTROPHE_OUTSIDE_WORD = re.compile(r"(?<![^\W_])'|'(?![^\W_])")
_WHITESPACE_RUN = re.compile(r"\s+")


def preprocess_caption(text: str) -> str:
    """Lower-case a caption, replace punctuation by spaces, keep in-word apostrophes, collapse spaces.

    Example: '  A dog barks, then "someone\u2019s" car-alarm goes off!' -> "a dog barks then someone's car alarm goes off".
    """
    if not isinstance(text, str):
        raise TypeError(f"a caption must be a str, got {type(text).__name__}: {text!r}")
    text = _APOSTROPHE_VARIANTS.sub("'", text.lower())
    text = _NOT_WORD_SPACE_OR_APOSTROPHE.sub(" ", text)
    text = _APOSTROPHE_OUTSIDE_WORD.sub(" ", text)
    return _WHITESPACE_RUN.sub(" ", text).strip()
