"""Caption preprocessing: the reference's rule, string for string, and the older "words" style.

Expected outputs are derived by hand from the rule (data_handling/text_preprocess.py's docstring):
lower case; whitespace before , . ! ? ; : " dropped when the mark is followed by whitespace or ends the
caption (matches do not overlap), one pass of "  " -> " "; ( , . ! ? ; : | * " ) -> space, another pass
of "  " -> " "; nothing is stripped.
"""

from __future__ import annotations

import pytest

from data_handling.text_preprocess import CAPTION_STYLES, preprocess_caption


@pytest.mark.parametrize("raw, expected", [
    # trailing mark -> trailing space (not stripped); ", " -> "  " -> " "
    ("A dog barks, then a car passes.", "a dog barks then a car passes "),
    # " , " loses its space first: "barks, then" -> "barks  then" -> "barks then"
    ("A dog barks , then it stops", "a dog barks then it stops"),
    # hyphens, apostrophes, ampersands, slashes, underscores, brackets other than () are kept
    ("High-pitched beeps", "high-pitched beeps"),
    ("Someone's dog & cat/bird_x", "someone's dog & cat/bird_x"),
    ("Rain [light] {x} 'quoted'", "rain [light] {x} 'quoted'"),
    # parentheses become spaces: "wind  strong  blows" -> "wind strong blows"
    ("Wind (strong) blows", "wind strong blows"),
    # non-overlapping matches: only the first comma's space goes ("a, , b"), then 4 spaces -> 2
    ("a , , b", "a  b"),
    # two passes of "  " -> " ": 3 spaces -> 2 -> 1; 5 spaces -> 3 -> 2
    ("a   b", "a b"),
    ("a     b", "a  b"),
    # a mark at the end keeps its space removed; a mark followed by a letter keeps the space
    ("Dog barks .", "dog barks "),
    ("Dog barks .Then", "dog barks then"),
    ("x ,y", "x y"),
    # a leading quote leaves a leading space
    ('"Loud" noise', " loud noise"),
    ("Beep ; beep : beep ! beep ?", "beep beep beep beep "),
    # any whitespace before the mark counts (tab, newline)
    ("Tab\t, and newline\n.", "tab and newline "),
    ("A|B*C", "a b c"),
    ("\u00c7a VA", "\u00e7a va"),
    # three marks -> three spaces -> two
    ("...", "  "),
    ("A ... B", "a   b"),
    (" x", " x"),
    ("", ""),
])
def test_reference_style(raw, expected):
    assert preprocess_caption(raw) == expected
    assert preprocess_caption(raw, style="reference") == expected


@pytest.mark.parametrize("raw, expected", [
    ("A dog barks, then a car passes.", "a dog barks then a car passes"),
    ('  Someone\u2019s "loud" HIGH-pitched   whistle!?  ', "someone's loud high pitched whistle"),
    ("'Quoted' dogs' bark; (x) [y] {z} a/b a\\b a_b a*b a|b", "quoted dogs bark x y z a b a b a b a b a b"),
    ("Rain at 10.5 kHz: don't stop", "rain at 10 5 khz don't stop"),
    ("...", ""),
])
def test_words_style_is_the_earlier_rule(raw, expected):
    assert preprocess_caption(raw, style="words") == expected


def test_styles_and_errors():
    assert CAPTION_STYLES == ("reference", "words")
    with pytest.raises(ValueError, match="reference"):
        preprocess_caption("x", style="bert")
    with pytest.raises(TypeError, match="str"):
        preprocess_caption(None)
