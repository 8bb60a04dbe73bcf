"""Play order: repeats, repeat counts, endings, and sections without a forward repeat."""
from __future__ import annotations

from pipeline.form import _Bar, play_order


def bars(spec: str) -> list[_Bar]:
    """One token per bar: '|:' forward, ':|' backward (':|3' three times), '[1]' ending 1."""
    out = []
    for k, token in enumerate(spec.split()):
        forward = token.startswith("|:")
        times = 0
        if ":|" in token:
            tail = token.split(":|", 1)[1].split("[")[0]
            times = int(tail) if tail else 2
        endings = None
        if "[" in token:
            endings = frozenset(int(n) for n in token[token.index("[") + 1: token.index("]")].split(","))
        out.append(_Bar(float(4 * k), 4.0, forward, times, endings))
    return out


def numbered(spec: str) -> list[int]:
    return [i + 1 for i in play_order(bars(spec))]


def test_simple_repeat_from_the_start():
    assert numbered("a b:| c") == [1, 2, 1, 2, 3]


def test_forward_and_backward_repeat():
    assert numbered("a |:b c:| d") == [1, 2, 3, 2, 3, 4]


def test_repeat_three_times():
    assert numbered("|:a b:|3 c") == [1, 2, 1, 2, 1, 2, 3]


def test_first_and_second_endings():
    assert numbered("|:a b [1]c:| [2]d e") == [1, 2, 3, 1, 2, 4, 5]


def test_section_without_forward_repeat_returns_after_previous_repeat():
    # bar 3 starts a new section (the previous one ended with a backward repeat); its own
    # backward repeat goes back to bar 3, not to bar 1 — as in Haydn op. 74/1, iii, bars 61–74
    assert numbered("a b:| c d:| e") == [1, 2, 1, 2, 3, 4, 3, 4, 5]


def test_endings_for_passes_one_and_two_then_three():
    assert numbered("|:a [1,2]b:|3 [3]c") == [1, 2, 1, 2, 1, 3]
