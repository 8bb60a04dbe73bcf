"""The order in which a player reads the measures: repeats, their ``times``, endings and jumps.

The order is worked out once, on the first part's measures (all parts share the bar structure),
and becomes a :class:`Timeline` that maps any written offset (quarter notes from the start of
the part) to the offsets at which it is played. Nothing in the score is copied.

Rules, as a player reads them:

- A backward repeat goes back to the last forward repeat, or, when there is none since the
  previous backward repeat, to the bar after it (or the start); it is taken ``times − 1`` times
  (2 by default). A bar under an ending bracket is played only on the passes the bracket names;
  after the last ending the next section begins. On a pass no ending names, only the highest
  ending plays, and none if that one closes with a backward repeat (a "1." without its "2.").
- D.C. (da capo) goes back to the first bar, D.S. (dal segno) to the bar of the segno (the last
  one before the D.S., else the first one), at the end of the bar that carries the mark and
  after that bar's own repeat has been taken. Each jump is taken once, or twice when its bar
  says so ("ancora una volta il trio", "once more": Beethoven's scherzo–trio–scherzo–trio–
  scherzo); Fine and To Coda are then heeded only after the last time.
- A D.C. in a score with no Fine, after a section titled "Trio", "Maggiore" or "Minore", ends
  at the bar before that title: "Menuetto da capo" means the minuet, not the trio again.
- After a jump, repeats are played once (no repeat; under endings only the last ending is
  played), unless the jump says "con ripetizione" or "with repeats". Fine then ends the piece at
  the end of its bar, and a To Coda mark leads from the end of its bar to the next coda sign.
  "al Fine" heeds only Fine, "al Coda" only To Coda, a plain D.C./D.S. both. Before any jump,
  Fine and To Coda are ignored.
- The marks come from ``<sound dacapo= dalsegno= segno= coda= tocoda= fine=>`` (which music21
  does not read, so the MusicXML file is read for them), from words ("D.C. al Fine", "To Coda",
  "Fine", …) and from the segno and coda signs. Two coda signs and no "To Coda": the first is the
  To Coda mark. A mark without its counterpart (a D.S. without a segno, a To Coda without a coda)
  is logged and ignored: the music plays on.
- A pickup (anacrusis) bar lasts what it holds, not a full bar.
- A bar one part overfills (or another underfills) lasts as long as its longest part in every
  part (:func:`align_measures`), as MuseScore imports it: the parts stay together after it,
  also across repeats.
"""
from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.score import musicxml

log = logging.getLogger(__name__)

MAX_PLAYED_MEASURES = 100_000  # guards against a repeat structure that never ends


@dataclass(frozen=True)
class Jump:
    """A D.C. or D.S., taken at the end of its bar."""

    to: str  # "start" (da capo) or "segno" (dal segno)
    until: str | None = None  # "fine", "coda", or None: a plain D.C./D.S. heeds both
    repeats: bool = False  # "con ripetizione": repeats are taken again after the jump
    times: int = 1  # how many times the jump is taken ("ancora una volta": 2)


@dataclass(frozen=True)
class _Bar:
    start: float
    length: float
    forward: bool
    backward_times: int  # 0 = no backward repeat
    endings: frozenset[int] | None
    jump: Jump | None = None
    segno: bool = False
    coda: bool = False  # a coda sign: where a To Coda leads
    to_coda: bool = False
    fine: bool = False
    number: str = ""  # the measure number printed in the score, for messages


@dataclass(frozen=True)
class Timeline:
    """Written measure starts and where each measure is played (``played[i]``: new starts)."""

    starts: tuple[float, ...]
    played: tuple[tuple[float, ...], ...]
    total: float
    #: in play order: (written start, played start, length) of each measure played
    segments: tuple[tuple[float, float, float], ...] = ()
    #: in play order: the index of each measure played (as ``segments``)
    order: tuple[int, ...] = ()
    #: each written measure's printed number
    numbers: tuple[str, ...] = ()

    def bar(self, offset: float) -> int:
        """The index of the measure the written ``offset`` is in (0 before the first)."""
        return max(0, bisect.bisect_right(self.starts, offset + 1e-9) - 1)

    def map(self, offset: float) -> tuple[float, ...]:
        """Every played offset of the written ``offset`` (none if its bar is never played)."""
        if not self.starts:
            return (offset,)
        i = self.bar(offset)
        return tuple(p + (offset - self.starts[i]) for p in self.played[i])


def align_measures(score) -> None:
    """Start every part's k-th measure at the same offset, each bar as long as its longest part.

    music21 places each part's measures by what that part holds, so a bar overfilled in one
    part only (Haydn op. 74/1, iii, bar 58: a stray 16th rest in the first violin) moves that
    part's later bars away from the others', and a repeat then takes the others' downbeats to
    the wrong bar. Changes the score in place; nothing to do when the parts agree.
    """
    from music21 import stream

    parts = [list(p.getElementsByClass(stream.Measure)) for p in score.parts]
    parts = [ms for ms in parts if ms]
    if len(parts) < 2:
        return
    n_bars = max(len(ms) for ms in parts)
    lengths = [0.0] * n_bars
    for ms in parts:
        for k, m in enumerate(ms):
            end = float(ms[k + 1].offset) if k + 1 < len(ms) else \
                float(m.offset) + float(m.duration.quarterLength)
            lengths[k] = max(lengths[k], end - float(m.offset))
    first = min(float(ms[0].offset) for ms in parts)
    starts = [first]
    for length in lengths[:-1]:
        starts.append(starts[-1] + length)
    for part, ms in zip(score.parts, parts):
        moved = [(m, starts[k]) for k, m in enumerate(ms) if abs(float(m.offset) - starts[k]) > 1e-9]
        for m, start in moved:
            part.setElementOffset(m, start)
        if moved:
            log.info("part %s: measures moved to line up with the other parts (from measure %s)",
                     part.partName, moved[0][0].number)
            part.coreElementsChanged()


def timeline(score, *, source: str | Path | None = None) -> Timeline:
    """The play order of ``score`` (a music21 Score) as a :class:`Timeline`.

    ``source`` is the file the score was read from: for a MusicXML file, its ``<sound>`` jump
    attributes are read from it.
    """
    bars = _bars(score, source)
    if not bars:
        return Timeline((), (), 0.0)
    order = play_order(bars)
    played: list[list[float]] = [[] for _ in bars]
    segments = []
    t = 0.0
    for i in order:
        played[i].append(t)
        segments.append((bars[i].start, t, bars[i].length))
        t += bars[i].length
    return Timeline(tuple(b.start for b in bars), tuple(tuple(p) for p in played), t,
                    tuple(segments), tuple(order), tuple(b.number for b in bars))


def play_order(bars: list[_Bar]) -> list[int]:
    """Indexes of ``bars`` in the order they are played."""
    order: list[int] = []
    taken: dict[int, int] = {}  # backward repeat → jumps made so far
    section_start, passage = 0, 1
    i, arrived_by_jump = 0, False
    jump: Jump | None = None  # the last D.C./D.S. taken
    jumps_taken: dict[int, int] = {}  # bar of a jump → times taken
    last_time = False  # the last jump taken has been taken for the last time
    while i < len(bars) and len(order) < MAX_PLAYED_MEASURES:
        bar = bars[i]
        if bar.forward and not arrived_by_jump:
            section_start, passage = i, 1
        arrived_by_jump = False
        replay = jump is None or jump.repeats
        # after a jump without repeats, a pass no ending names: only the last ending plays
        if bar.endings is not None and _skip_ending(bars, i, passage if replay else 0):
            i += 1
            continue
        order.append(i)
        if bar.backward_times:
            if replay and taken.get(i, 0) < bar.backward_times - 1:
                taken[i] = taken.get(i, 0) + 1
                passage += 1
                i, arrived_by_jump = section_start, True
                continue
            taken[i] = 0
            section_start, passage = i + 1, 1
        elif bar.endings is not None and (i + 1 >= len(bars) or bars[i + 1].endings is None):
            section_start, passage = i + 1, 1  # the last ending is over: a new section begins
        target = None
        if last_time and bar.fine and jump.until != "coda":
            break
        if last_time and bar.to_coda and jump.until != "fine":
            target = next((k for k in range(i + 1, len(bars)) if bars[k].coda), None)
            if target is None:
                log.warning("measure %s: To Coda but no coda sign after it; playing on", _name(bars, i))
        if target is None and bar.jump is not None and jumps_taken.get(i, 0) < bar.jump.times:
            jumps_taken[i] = jumps_taken.get(i, 0) + 1
            target = _jump_target(bars, i, bar.jump)
            if target is not None:
                jump, last_time = bar.jump, jumps_taken[i] >= bar.jump.times
        if target is not None:
            i, section_start, passage = target, target, 1
            continue
        i += 1
    return order


def _jump_target(bars: list[_Bar], i: int, jump: Jump) -> int | None:
    """The bar a D.C./D.S. at bar ``i`` goes to (None, with a warning, when there is none)."""
    if jump.until == "fine" and not any(b.fine for b in bars):
        log.warning("measure %s: al Fine but no Fine; playing on after the jump", _name(bars, i))
    if jump.until == "coda" and not any(b.to_coda for b in bars):
        log.warning("measure %s: al Coda but no To Coda mark; playing on after the jump",
                    _name(bars, i))
    if jump.to == "start":
        return 0
    segnos = [k for k, b in enumerate(bars) if b.segno]
    if not segnos:
        log.warning("measure %s: D.S. but no segno in the score; playing on without the jump",
                    _name(bars, i))
        return None
    before = [k for k in segnos if k <= i]
    return before[-1] if before else segnos[0]


def _name(bars: list[_Bar], i: int) -> str:
    return bars[i].number or str(i + 1)


def _skip_ending(bars: list[_Bar], i: int, passage: int) -> bool:
    """Whether the bar ``i`` under an ending is left out on this pass: yes when another ending
    of the same run names the pass; when none does, only the highest-numbered ending plays."""
    mine = bars[i].endings or frozenset()
    if passage in mine:
        return False
    lo = i
    while lo > 0 and bars[lo - 1].endings is not None:
        lo -= 1
    hi = i
    while hi + 1 < len(bars) and bars[hi + 1].endings is not None:
        hi += 1
    run = [bars[k].endings or frozenset() for k in range(lo, hi + 1)]
    if any(passage in e for e in run):
        return True
    top = max(max(e, default=0) for e in run)
    if max(mine, default=0) < top:
        return True
    # the highest ending goes back (it closes with a backward repeat): it is not the way out,
    # the bar after the run is (a "1." bracket whose "2." was never drawn, as in Joplin's Maple
    # Leaf Rag, bars 16–17)
    last = max(k for k in range(lo, hi + 1) if max(bars[k].endings or frozenset(), default=0) == top)
    return bars[last].backward_times > 0


def _bars(score, source: str | Path | None = None) -> list[_Bar]:
    from music21 import bar as m21bar
    from music21 import spanner, stream

    if not score.parts:
        return []
    part = score.parts[0]
    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        return []
    endings: dict[int, frozenset[int]] = {}
    brackets = sorted(part.spannerBundle.getByClass(spanner.RepeatBracket),
                      key=lambda b: b.getFirst().offset if b.getFirst() is not None else 0.0)
    numbers = [frozenset(int(n) for n in (b.numberRange or []) if n) for b in brackets]
    index = {id(m): j for j, m in enumerate(measures)}
    for k, bracket in enumerate(brackets):
        if not numbers[k]:  # an unnumbered bracket before "2." is the first ending
            following = numbers[k + 1] if k + 1 < len(brackets) else frozenset()
            numbers[k] = frozenset({max(1, min(following) - 1)}) if following else frozenset({1})
        # music21 may keep only the bracket's first and last bar (its MusicXML start and
        # stop): the bars between are under it too
        inside = [index[id(m)] for m in bracket.getSpannedElements() if id(m) in index]
        for j in range(min(inside), max(inside) + 1) if inside else ():
            endings[id(measures[j])] = numbers[k]
    starts = [float(m.offset) for m in measures]
    bars = []
    for k, m in enumerate(measures):
        length = (starts[k + 1] - starts[k]) if k + 1 < len(measures) else float(m.duration.quarterLength)
        left, right = m.leftBarline, m.rightBarline
        forward = isinstance(left, m21bar.Repeat) and left.direction == "start"
        times = 0
        if isinstance(right, m21bar.Repeat) and right.direction == "end":
            times = int(right.times) if right.times else 2
        bars.append(_Bar(starts[k], length, forward, max(0, times), endings.get(id(m)),
                         number=f"{m.number}{m.numberSuffix or ''}"))
    return _with_marks(bars, _text_marks(score, starts) + _sound_marks(source, len(bars)))


# ---------------------------------------------------------------------------------------------
# Jump marks: (bar index, kind, jump) with kind "jump", "segno", "coda", "to_coda" or "fine"

_SYMBOLS = str.maketrans({"\U0001D10B": " segno ", "\U0001D10C": " coda "})  # 𝄋 𝄌
_JUMP_WORDS = re.compile(r"(?:(da ?capo|d ?c)|dal ?segno|al ?segno|d ?s)\b(.*)")
_AGAIN = re.compile(r"\b(ancora una volta|un altra volta|once more|noch einmal)\b")
_SECTION_TITLE = re.compile(r"(trio|maggiore|minore)( [ivx]+| \d+)?")


def _classify(text: str) -> tuple[str, Jump | None] | None:
    """The jump mark that words (or a sign's name) stand for, or None."""
    words = " ".join(re.sub(r"[.\s]+", " ", text.translate(_SYMBOLS).lower()).split())
    m = _JUMP_WORDS.match(words)
    if m:
        rest = m.group(2)
        until = re.search(r"\bal (fine|coda)\b", rest) or re.search(r"\b(coda)\b", rest)
        repeats = re.search(r"\bcon rip|\bwith repeat", rest) is not None
        return "jump", Jump("start" if m.group(1) else "segno", until and until.group(1), repeats,
                            2 if _AGAIN.search(rest) else 1)
    if _AGAIN.search(words):  # words beside a D.C.: take it once more
        return "again", None
    if _SECTION_TITLE.fullmatch(words):
        return "section", None
    for pattern, kind in ((r"(to|al) ?coda\b", "to_coda"), (r"coda\b", "coda"),
                          (r"segno\b", "segno"), (r"fine\b", "fine")):
        if re.match(pattern, words):
            return kind, None
    return None


def _text_marks(score, starts: list[float]) -> list[tuple[int, str, Jump | None]]:
    """Marks from music21's repeat expressions, segno/coda signs and text expressions."""
    from music21 import expressions, repeat, stream

    marks = []
    for part in score.parts:
        for m in part.getElementsByClass(stream.Measure):
            # by the measure, not the flat offset: a mark after the last note belongs to its bar
            k = max(0, bisect.bisect_right(starts, float(m.offset) + 1e-9) - 1)
            for el in m.recurse().getElementsByClass(
                    (repeat.RepeatExpression, expressions.TextExpression)):
                try:
                    text = el.getText() if isinstance(el, repeat.RepeatExpression) else el.content
                except AttributeError:  # no text kept: its class name says it ("DaCapoAlFine")
                    text = re.sub(r"(?<!^)(?=[A-Z])", " ", type(el).__name__)
                found = _classify(str(text or ""))
                if found:
                    marks.append((k, *found))
    return marks


def _sound_marks(source, n_bars: int) -> list[tuple[int, str, Jump | None]]:
    """Marks from ``<sound>`` attributes of the MusicXML file ``source`` (k-th measure = bar k)."""
    lists = musicxml.part_measures(
        source, rb"<sound\b[^>]*\b(dacapo|dalsegno|segno|coda|tocoda|fine)=",
        "<sound> jump marks") or []
    attributes = (("dacapo", "jump", Jump("start")), ("dalsegno", "jump", Jump("segno")),
                  ("segno", "segno", None), ("coda", "coda", None),
                  ("tocoda", "to_coda", None), ("fine", "fine", None))
    marks = []
    for measures in lists:
        for k, m in enumerate(measures[:n_bars]):
            for snd in m.iter("sound"):
                for name, kind, jump in attributes:
                    value = snd.get(name)
                    if value is not None and (name != "dacapo" or value.strip() == "yes"):
                        marks.append((k, kind, jump))
    return marks


def _with_marks(bars: list[_Bar], marks: list[tuple[int, str, Jump | None]]) -> list[_Bar]:
    """``bars`` carrying the jump marks; words and ``<sound>`` of one bar are merged."""
    if not marks:
        return bars
    kinds: dict[int, set[str]] = {}
    jumps: dict[int, Jump] = {}
    for k, kind, jump in marks:
        kinds.setdefault(k, set()).add(kind)
        if jump is not None:
            old = jumps.get(k)
            # words say "al Fine"/"al Coda", a bare <sound> does not: keep what is said
            jumps[k] = jump if old is None else Jump(old.to, old.until or jump.until,
                                                      old.repeats or jump.repeats)
    for found in kinds.values():
        if "to_coda" in found:
            found.discard("coda")  # the sign printed beside "To Coda" is not a target
    codas = sorted(k for k in kinds if "coda" in kinds[k])
    if len(codas) >= 2 and not any("to_coda" in s for s in kinds.values()):
        kinds[codas[0]] = (kinds[codas[0]] - {"coda"}) | {"to_coda"}
    for k, found in kinds.items():
        if "again" in found and k in jumps:
            jumps[k] = replace(jumps[k], times=2)
    # no Fine: a D.C. after a "Trio"/"Maggiore" title ends before it (the minuet da capo)
    titles = sorted(k for k in kinds if "section" in kinds[k] and k > 0)
    if titles and not any("fine" in s for s in kinds.values()) and \
            any(j.to == "start" and k > titles[0] for k, j in jumps.items()):
        kinds.setdefault(titles[0] - 1, set()).add("fine")
    flags = {"segno", "coda", "to_coda", "fine"}
    return [replace(b, jump=jumps.get(k), **{kind: True for kind in kinds.get(k, ()) if kind in flags})
            for k, b in enumerate(bars)]
