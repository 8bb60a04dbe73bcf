"""Write the demo scores of the four large ensembles (issue 4) into ``scores/``.

    python scripts/demo_scores_large.py [OUT_DIR]

Each piece is composed here as an arranger would sketch it: a melody and a bass line written by
hand over a chord plan, inner voices found by a small voice-leading search (complete chords,
no parallel fifths or octaves, sevenths and leading notes resolved, smallest motion), then
orchestrated by doubling those voices at the octaves and ranges of the real instrumentation.
Everything is composed at concert pitch and written at written pitch: each transposing part
carries its ``<transpose>``, so rendering exercises the pipeline's transposition. The jazz
chart's drum set gets one ``<score-instrument>``/``<midi-unpitched>`` per kit piece and an
``<instrument id>`` on every note, as notation programs write it.

The line notation used below, one token per event, bars separated by ``|`` (checked):
``Bb4/q`` a note (durations w h q e s, ``.`` dotted), ``C4+E4/h`` a chord, ``r/q`` a rest;
after the duration ``>`` accent, ``^`` marcato, ``'`` staccato, ``-`` tenuto, ``~`` tie to the
next note, ``F`` fermata, ``R`` a roll. Standalone tokens: ``!pp`` a dynamic, ``<``/``>`` start a crescendo/
diminuendo at the next note and ``=`` ends it at the previous one, ``(``/``)`` the same for a
slur, ``@rit.`` words (``_`` for spaces).
"""
from __future__ import annotations

import copy
import itertools
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

from music21 import (articulations, bar, chord, clef, dynamics, expressions, instrument,
                     interval, key, layout, metadata, meter, note, percussion, pitch, spanner,
                     stream, tempo)

ROOT = Path(__file__).resolve().parent.parent
COMPOSER = "score2audio demo"
DURATIONS = {"w": 4.0, "h": 2.0, "q": 1.0, "e": 0.5, "s": 0.25}
MARKS = {">": articulations.Accent, "^": articulations.StrongAccent,
         "'": articulations.Staccato, "-": articulations.Tenuto}


# ---------------------------------------------------------------------------------------------
# lines: the notation above, parsed into events

@dataclass
class Ev:
    """One note, chord or rest at concert pitch, with what is written on it."""

    pitches: tuple[str, ...]   # music21 names ('B-4'); empty: a rest; 'kit:ride' on a drum set
    ql: float
    marks: str = ""
    dynamic: str | None = None
    words: tuple[str, ...] = ()
    hairpin: str | None = None      # '<' or '>' starts here
    hairpin_end: bool = False
    slur: bool = False
    slur_end: bool = False

    def shifted(self, octaves: int) -> "Ev":
        """The event ``octaves`` up (down when negative), spelled as before."""
        if not octaves or self.is_rest or self.pitches[0].startswith("kit:"):
            return replace(self)
        moved = []
        for name in self.pitches:
            p = pitch.Pitch(name)
            p.octave += octaves
            moved.append(p.nameWithOctave)
        return replace(self, pitches=tuple(moved))

    @property
    def is_rest(self) -> bool:
        return not self.pitches


Line = list[list[Ev]]  # bars of events


def _name(token: str) -> str:
    """'Bb4' → 'B-4', 'F#3' → 'F#3', 'kit:ride' stays."""
    if token.startswith("kit:"):
        return token
    m = re.fullmatch(r"([A-G])(bb|b|#|##)?(-?\d)", token)
    if not m:
        raise ValueError(f"not a pitch: {token!r}")
    return m.group(1) + (m.group(2) or "").replace("b", "-") + m.group(3)


def line(text: str, bar_ql: float = 4.0) -> Line:
    """Parse the line notation (see the module docstring) into bars, checking every bar's length."""
    bars: Line = [[]]
    pending: dict = {}
    for token in text.split():
        if token == "|":
            bars.append([])
            continue
        if token.startswith("!"):
            pending["dynamic"] = token[1:]
        elif token in ("<", ">"):
            pending["hairpin"] = token
        elif token == "=":
            _last(bars).hairpin_end = True
        elif token == "(":
            pending["slur"] = True
        elif token == ")":
            _last(bars).slur_end = True
        elif token.startswith("@"):
            pending["words"] = pending.get("words", ()) + (token[1:].replace("_", " "),)
        else:
            m = re.fullmatch(r"([^/]+)/([whqes])(\.?)([>^'\-~FR]*)", token)
            if not m:
                raise ValueError(f"bad token {token!r} in {text[:40]!r}…")
            ql = DURATIONS[m.group(2)] * (1.5 if m.group(3) else 1.0)
            pitches = () if m.group(1) == "r" else tuple(_name(p) for p in m.group(1).split("+"))
            bars[-1].append(Ev(pitches, ql, m.group(4), **pending))
            pending = {}
    if not bars[-1]:
        bars.pop()
    for i, b in enumerate(bars, 1):
        total = sum(e.ql for e in b)
        if abs(total - bar_ql) > 1e-9:
            raise ValueError(f"bar {i} lasts {total} quarters, not {bar_ql}: {text[:60]!r}…")
    return bars


def _last(bars: Line) -> Ev:
    for b in reversed(bars):
        if b:
            return b[-1]
    raise ValueError("a hairpin or slur end before any note")


def rests(n: int, bar_ql: float = 4.0) -> Line:
    return [[Ev((), bar_ql)] for _ in range(n)]


def octave(ln: Line, n: int) -> Line:
    return [[e.shifted(n) for e in b] for b in ln]


def dyn(ln: Line, mark: str) -> Line:
    """The line with ``mark`` on its first note."""
    out = [[replace(e) for e in b] for b in ln]
    first = next(e for b in out for e in b if not e.is_rest)
    first.dynamic = mark
    return out


def marked(ln: Line, marks: str, *, only_long: float | None = None, keep: bool = False) -> Line:
    """The line with articulation ``marks`` on every note (shorter than ``only_long`` when
    given); ``keep`` leaves notes that already carry marks alone."""
    out = []
    for b in ln:
        nb = []
        for e in b:
            e = replace(e)
            if not e.is_rest and (only_long is None or e.ql < only_long) and \
                    not (keep and e.marks.strip("~FR")):
                e.marks = marks + "".join(c for c in e.marks if c in "~FR")
            nb.append(e)
        out.append(nb)
    return out


def cat(*lines: Line) -> Line:
    return [b for ln in lines for b in ln]


# ---------------------------------------------------------------------------------------------
# harmony: chord symbols, a voice-leading search for inner voices, close and drop-2 voicings

QUALITIES = {"": ("P1", "M3", "P5"), "m": ("P1", "m3", "P5"), "7": ("P1", "M3", "P5", "m7"),
             "m7": ("P1", "m3", "P5", "m7"), "dim7": ("P1", "m3", "d5", "d7"),
             "maj7": ("P1", "M3", "P5", "M7"), "6": ("P1", "M3", "P5", "M6"),
             "m7b5": ("P1", "m3", "d5", "m7"), "sus4": ("P1", "P4", "P5")}


@dataclass(frozen=True)
class Chord:
    symbol: str
    names: tuple[str, ...]   # spelled pitch-class names, root first: ('B-', 'D', 'F', 'A-')

    @property
    def pcs(self) -> tuple[int, ...]:
        return tuple(pitch.Pitch(n).pitchClass for n in self.names)

    @property
    def seventh(self) -> int | None:
        return self.pcs[3] if len(self.names) > 3 and self.symbol[-1:] != "6" else None

    def spell(self, midi: int) -> str:
        """The chord tone at MIDI ``midi`` spelled from the chord."""
        name = next(n for n in self.names if pitch.Pitch(n).pitchClass == midi % 12)
        p = pitch.Pitch(name)
        p.octave = 4
        p.octave += (midi - int(p.ps)) // 12
        return p.nameWithOctave


def parse_chord(symbol: str) -> Chord:
    m = re.fullmatch(r"([A-G](?:b|#)?)(m7b5|maj7|dim7|sus4|m7|m|7|6)?(?:/.*)?", symbol)
    if not m:
        raise ValueError(f"not a chord symbol: {symbol!r}")
    root = pitch.Pitch(m.group(1).replace("b", "-"))
    names = tuple(root.transpose(i).name for i in QUALITIES[m.group(2) or ""])
    return Chord(symbol, names)


def sounding(ln: Line) -> list[tuple[float, float, Ev]]:
    """``(offset, end, event)`` of a line's notes, in quarters from its start."""
    out, t = [], 0.0
    for b in ln:
        for e in b:
            if not e.is_rest:
                out.append((t, t + e.ql, e))
            t += e.ql
    return out


def at(timeline: list[tuple[float, float, Ev]], t: float) -> int | None:
    """The highest MIDI pitch sounding at ``t`` (None: silence)."""
    for s, e, ev in timeline:
        if s <= t + 1e-9 < e:
            return max(int(pitch.Pitch(p).ps) for p in ev.pitches)
    return None


PERFECT = (0, 7)


def inner_voices(plan: str, soprano: Line, bass: Line, *, tonic: str,
                 alto: tuple[int, int] = (55, 74), tenor: tuple[int, int] = (48, 67),
                 bar_ql: float = 4.0) -> tuple[Line, Line]:
    """Alto and tenor for a chord ``plan`` ("Eb/q Bb/q | …", one chord per duration) between a
    given soprano and bass: every chord complete (a seventh chord may drop its fifth), no
    doubled leading note or seventh, no parallel fifths or octaves between any two voices,
    sevenths falling by step, voices no more than an octave apart; among those, the least motion.

    Raises ValueError naming the slot when no voicing satisfies the rules (then the bass or
    the soprano needs another note)."""
    slots = []
    t = 0.0
    for b in plan.split("|"):
        for tok in b.split():
            sym, dur = tok.split("/")
            ql = DURATIONS[dur[0]] * (1.5 if dur.endswith(".") else 1.0)
            slots.append((t, ql, parse_chord(sym)))
            t += ql
    s_line, b_line = sounding(soprano), sounding(bass)
    leading = (pitch.Pitch(tonic).pitchClass + 11) % 12

    def options(slot):
        start, ql, ch = slot
        s, b = at(s_line, start), at(b_line, start)
        if b is None:
            raise ValueError(f"no bass at quarter {start}")
        out = []
        pcs = set(ch.pcs)
        for a_, t_ in itertools.product(range(*alto), range(*tenor)):
            if a_ % 12 not in pcs or t_ % 12 not in pcs:
                continue
            top = s if s is not None else a_
            if not (b <= t_ <= a_ <= top) or top - a_ > 12 or a_ - t_ > 12:
                continue
            voices = [v for v in (s, a_, t_, b) if v is not None]
            have = {v % 12 for v in voices}
            need = {ch.pcs[0], ch.pcs[1]} | ({ch.pcs[3]} if len(ch.pcs) > 3 else {ch.pcs[2]})
            if not need <= have:
                continue
            if sum(v % 12 == leading for v in voices) > 1 and leading in pcs:
                continue
            if ch.seventh is not None and sum(v % 12 == ch.seventh for v in voices) > 1:
                continue
            out.append((a_, t_))
        if not out:
            raise ValueError(f"no voicing for {ch.symbol} at quarter {start} (soprano {s}, bass {b})")
        return s, b, out

    table = [options(slot) for slot in slots]

    def cost(prev, cur, k):
        (s0, b0, (a0, t0)), (s1, b1, (a1, t1)) = prev, cur
        four0, four1 = (s0, a0, t0, b0), (s1, a1, t1, b1)
        c = abs(a1 - a0) + abs(t1 - t0)
        c += 3 * (abs(a1 - a0) > 4) + 3 * (abs(t1 - t0) > 5)
        for i, j in itertools.combinations(range(4), 2):
            x0, y0, x1, y1 = four0[i], four0[j], four1[i], four1[j]
            if None in (x0, y0, x1, y1) or (x0 == x1 and y0 == y1):
                continue
            if (x0 - y0) % 12 in PERFECT and (x1 - y1) % 12 == (x0 - y0) % 12 \
                    and (x1 - x0) * (y1 - y0) > 0:
                return None  # parallel fifths or octaves
        seventh = slots[k - 1][2].seventh
        for v0, v1 in ((a0, a1), (t0, t1)):
            if seventh is not None and v0 % 12 == seventh and not 1 <= v0 - v1 <= 2:
                c += 12  # an unresolved seventh
        return c

    best = {o: (0.0, [o]) for o in table[0][2]}
    for k in range(1, len(table)):
        nxt = {}
        for o1 in table[k][2]:
            cands = []
            for o0, (c0, path) in best.items():
                c = cost((table[k - 1][0], table[k - 1][1], o0), (table[k][0], table[k][1], o1), k)
                if c is not None:
                    cands.append((c0 + c, path))
            if cands:
                c, path = min(cands, key=lambda x: x[0])
                nxt[o1] = (c, path + [o1])
        if not nxt:
            raise ValueError(f"no voice leading into {slots[k][2].symbol} at quarter {slots[k][0]}")
        best = nxt
    path = min(best.values(), key=lambda x: x[0])[1]
    alto_bars, tenor_bars = _slot_bars(slots, [p[0] for p in path], bar_ql), \
        _slot_bars(slots, [p[1] for p in path], bar_ql)
    return alto_bars, tenor_bars


def _slot_bars(slots, midis, bar_ql) -> Line:
    """One note per chord slot, cut into bars (a slot across a bar line is tied)."""
    bars: Line = []
    for (start, ql, ch), m in zip(slots, midis):
        name = ch.spell(m)
        while ql > 1e-9:
            k = int(start // bar_ql + 1e-9)
            while len(bars) <= k:
                bars.append([])
            room = (k + 1) * bar_ql - start
            take = min(ql, room)
            ev = Ev((name,), take, "~" if ql - take > 1e-9 else "")
            bars[k].append(ev)
            start, ql = start + take, ql - take
    return bars


def close_voicing(top: int, ch: Chord, n: int = 4) -> list[int]:
    """Four-way close voicing under a melody note (top first): chord tones downwards; a ninth
    stands for the root and a thirteenth for the fifth; any other note is harmonised by the
    diminished seventh chord on it (passing diminished), as big-band arrangers do."""
    pcs = list(ch.pcs[:4]) if len(ch.pcs) >= 4 else list(ch.pcs) + [ch.pcs[0]]
    root = ch.pcs[0]
    rel = (top - root) % 12
    if top % 12 not in pcs:
        if rel in (1, 2):
            pcs[0] = top % 12
        elif rel in (8, 9) and len(ch.pcs) > 3:
            pcs[2] = top % 12
        else:
            pcs = [(top - 3 * i) % 12 for i in range(4)]
    out = [top]
    while len(out) < n:
        m = out[-1] - 1
        while m % 12 not in pcs or m % 12 in [x % 12 for x in out]:
            m -= 1
        out.append(m)
    return out


def drop2(voicing: list[int]) -> list[int]:
    """The second voice from the top an octave down (top first, re-sorted)."""
    v = list(voicing)
    v[1] -= 12
    return sorted(v, reverse=True)


# ---------------------------------------------------------------------------------------------
# parts and scores

@dataclass
class PartSpec:
    name: str
    inst: instrument.Instrument
    clef: str = "treble"                 # of the written part
    staves: tuple[str, ...] = ()         # a piano: the clefs of its staves
    kit: dict[str, tuple[str, int, str, str]] = field(default_factory=dict)  # drum set


def make_inst(cls, name: str, *, program: int | None = None, transposition: str | None = None,
              abbreviation: str | None = None) -> instrument.Instrument:
    inst = cls()
    inst.partName = name
    inst.instrumentName = name
    inst.partAbbreviation = abbreviation or name
    if program is not None:
        inst.midiProgram = program
    if transposition is not None:
        inst.transposition = interval.Interval(transposition) if transposition != "P1" else None
    return inst


CLEFS = {"treble": clef.TrebleClef, "bass": clef.BassClef, "alto": clef.AltoClef,
         "treble8vb": clef.Treble8vbClef, "percussion": clef.PercussionClef}


@dataclass
class Piece:
    title: str
    slug: str
    key_fifths: int
    bar_ql: float = 4.0
    time: str = "4/4"
    bpm: float = 100.0
    tempo_text: str | None = None
    repeat: tuple[int, int] | None = None  # first and last bar (1-based) of a repeated passage
    rit_bar: int | None = None  # bar (1-based) where "rit." is written over the score
    parts: list[tuple[PartSpec, Line]] = field(default_factory=list)

    def add(self, spec: PartSpec, ln: Line | list[Line]) -> None:
        if ln and isinstance(ln[0], list) and ln[0] and isinstance(ln[0][0], list):
            ln = cat(*ln)
        self.parts.append((spec, ln))


def _events_to_measures(ln: Line, spec: PartSpec, piece: Piece, first: bool,
                        staff_clef: str | None = None):
    """Measures of one staff at concert pitch, plus its spanners."""
    measures, spanners = [], []
    hairpin_start = slur_start = None
    hairpin_kind = None
    for k, b in enumerate(ln, 1):
        m = stream.Measure(number=k)
        if k == 1:
            m.insert(0, CLEFS[staff_clef or spec.clef]())
            m.insert(0, key.KeySignature(piece.key_fifths))
            m.insert(0, meter.TimeSignature(piece.time))
            if first:
                mark = tempo.MetronomeMark(number=piece.bpm, referent=1.0)
                m.insert(0, mark)
                if piece.tempo_text:
                    m.insert(0, expressions.TextExpression(piece.tempo_text))
        if piece.repeat and k == piece.repeat[0]:
            m.leftBarline = bar.Repeat(direction="start")
        if piece.repeat and k == piece.repeat[1]:
            m.rightBarline = bar.Repeat(direction="end")
        if k == len(ln):
            m.rightBarline = bar.Barline("final")
        if first and k == piece.rit_bar and not any("rit." in e.words for e in b):
            m.insert(0, expressions.TextExpression("rit."))
        t = 0.0
        for e in b:
            el = _element(e, spec)
            m.insert(t, el)
            if e.dynamic:
                m.insert(t, dynamics.Dynamic(e.dynamic))
            for w in e.words:
                if first or not re.match(r"(rit|rall|a tempo|swing)", w, re.I):
                    m.insert(t, expressions.TextExpression(w))
            if not e.is_rest:
                if e.hairpin:
                    hairpin_start, hairpin_kind = el, e.hairpin
                if e.hairpin_end and hairpin_start is not None:
                    cls = dynamics.Crescendo if hairpin_kind == "<" else dynamics.Diminuendo
                    spanners.append(cls(hairpin_start, el))
                    hairpin_start = None
                if e.slur:
                    slur_start = el
                if e.slur_end and slur_start is not None:
                    spanners.append(spanner.Slur(slur_start, el))
                    slur_start = None
            t += e.ql
        measures.append(m)
    return measures, spanners


def _element(e: Ev, spec: PartSpec):
    if e.is_rest:
        el = note.Rest(quarterLength=e.ql)
    elif e.pitches[0].startswith("kit:"):
        members = []
        for p in e.pitches:
            _, _, step_oct, head = spec.kit[p[4:]]
            u = note.Unpitched(displayName=step_oct)
            u.notehead = head
            u.editorial.kit = p[4:]
            members.append(u)
        el = members[0] if len(members) == 1 else percussion.PercussionChord(members)
        el.quarterLength = e.ql
        el.stemDirection = "up"
    elif len(e.pitches) == 1:
        el = note.Note(e.pitches[0], quarterLength=e.ql)
    else:
        el = chord.Chord(list(e.pitches), quarterLength=e.ql)
    for c in e.marks:
        if c in MARKS:
            el.articulations.append(MARKS[c]())
        elif c == "F":
            el.expressions.append(expressions.Fermata())
        elif c == "R":  # a roll (timpani, snare): three-stroke tremolo
            trem = expressions.Tremolo()
            trem.numberOfMarks = 3
            el.expressions.append(trem)
        elif c == "~" and not e.is_rest and not e.pitches[0].startswith("kit:"):
            from music21 import tie
            el.tie = tie.Tie("start")
    return el


def _fix_ties(part) -> None:
    """Close every tie a note opened (``~``) on the next note of the same pitch."""
    from music21 import tie

    notes = list(part.recurse().notes)
    for a, b in zip(notes, notes[1:]):
        if a.tie is not None and a.tie.type in ("start", "continue"):
            if b.tie is not None and b.tie.type == "start":
                b.tie = tie.Tie("continue")
            else:
                b.tie = tie.Tie("stop")


def build(piece: Piece) -> stream.Score:
    score = stream.Score()
    score.metadata = metadata.Metadata()
    score.metadata.title = piece.title
    score.metadata.composer = COMPOSER
    bars = {len(ln) for _, ln in piece.parts}
    if len(bars) != 1:
        raise ValueError(f"{piece.slug}: parts of different lengths: " + ", ".join(
            f"{s.name} {len(ln)}" for s, ln in piece.parts))
    for i, (spec, ln) in enumerate(piece.parts):
        spec.inst.partId = f"P{i + 1}"  # fixed ids: the same score on every run
        spec.inst.instrumentId = f"P{i + 1}-I1"
        if spec.staves:  # a piano: upper notes on the treble staff, the rest on the bass staff
            staffs = []
            for n, (s, split) in enumerate(zip(spec.staves, ("upper", "lower")), 1):
                ps = stream.PartStaff(id=f"P{i + 1}-Staff{n}")
                ps.partName = spec.name
                ps.insert(0, copy.deepcopy(spec.inst))
                measures, spanners = _events_to_measures(_split(ln, split), spec, piece, i == 0, s)
                for m in measures:
                    ps.append(m)
                for sp in spanners:
                    ps.insert(0, sp)
                _fix_ties(ps)
                staffs.append(ps)
            for ps in staffs:
                score.insert(0, ps)
            score.insert(0, layout.StaffGroup(staffs, name=spec.name, symbol="brace"))
            continue
        part = stream.Part(id=f"P{i + 1}")
        part.partName = spec.name
        part.insert(0, spec.inst)
        measures, spanners = _events_to_measures(ln, spec, piece, i == 0)
        for m in measures:
            part.append(m)
        for sp in spanners:
            part.insert(0, sp)
        _fix_ties(part)
        if spec.inst.transposition is not None:
            part.atSoundingPitch = True
            part.toWrittenPitch(inPlace=True)
        score.insert(0, part)
    return score


def _split(ln: Line, which: str) -> Line:
    """A piano line's notes from middle C up (upper staff) or below it (lower staff)."""
    out = []
    for b in ln:
        nb = []
        for e in b:
            keep = tuple(p for p in e.pitches if (pitch.Pitch(p).ps >= 60) == (which == "upper"))
            nb.append(replace(e, pitches=keep, marks=e.marks if keep else "",
                              dynamic=e.dynamic if keep or which == "upper" else None,
                              hairpin=e.hairpin if keep else None,
                              hairpin_end=e.hairpin_end if keep else False,
                              slur=e.slur if keep else False,
                              slur_end=e.slur_end if keep else False))
        out.append(nb)
    return out


def write(piece: Piece, out_dir: Path) -> Path:
    path = out_dir / f"{piece.slug}.musicxml"
    score = build(piece)
    score.write("musicxml", fp=str(path))
    kits = [(i, spec) for i, (spec, _) in enumerate(piece.parts) if spec.kit]
    if kits:
        _write_kit_instruments(path, kits, piece)
    return path


def _write_kit_instruments(path: Path, kits, piece: Piece) -> None:
    """Give each drum set part one score-instrument and midi-instrument (GM key, 1-based
    midi-unpitched) per kit piece, and each of its notes the ``<instrument id>`` of its piece:
    music21 writes only one instrument per part."""
    tree = ET.parse(path)
    root = tree.getroot()
    score_parts = root.findall("part-list/score-part")
    parts = root.findall("part")  # a piano's two staves are one <part>: one per PartSpec
    for i, spec in kits:
        sp, part = score_parts[i], parts[i]
        pid = sp.get("id")
        for el in list(sp):
            if el.tag in ("score-instrument", "midi-instrument"):
                sp.remove(el)
        ids = {}
        for piece_name, (label, gm_key, _, _) in spec.kit.items():
            ids[piece_name] = iid = f"{pid}-I{gm_key + 1}"
            si = ET.SubElement(sp, "score-instrument", id=iid)
            ET.SubElement(si, "instrument-name").text = label
        for piece_name, (label, gm_key, _, _) in spec.kit.items():
            mi = ET.SubElement(sp, "midi-instrument", id=ids[piece_name])
            ET.SubElement(mi, "midi-channel").text = "10"
            ET.SubElement(mi, "midi-unpitched").text = str(gm_key + 1)
            ET.SubElement(mi, "volume").text = "80"
        by_position = {(v[2][0], v[2][1:]): name for name, v in spec.kit.items()}
        for n in part.iter("note"):
            up = n.find("unpitched")
            if up is None:
                continue
            name = by_position[(up.findtext("display-step"), up.findtext("display-octave"))]
            after = max(list(n).index(x) for x in n if x.tag in ("unpitched", "duration", "tie"))
            n.insert(after + 1, ET.Element("instrument", id=ids[name]))
    ET.indent(tree)
    tree.write(path, encoding="UTF-8", xml_declaration=True)


# ---------------------------------------------------------------------------------------------
# helpers for writing from chord plans

FLATS = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")


def spell(midi: int, ch: Chord | None = None, *, tensions: tuple[str, ...] = ("M2", "M6")) -> str:
    """A MIDI note named from the chord (its tones and ninth/thirteenth), else with flats."""
    if ch is not None:
        root = pitch.Pitch(ch.names[0])
        names = list(ch.names) + [root.transpose(t).name for t in tensions]
        for n in names:
            if pitch.Pitch(n).pitchClass == midi % 12:
                p = pitch.Pitch(n)
                p.octave = 4
                p.octave += (midi - int(p.ps)) // 12
                return p.nameWithOctave
    p = pitch.Pitch(FLATS[midi % 12])
    p.octave = midi // 12 - 1
    return p.nameWithOctave


def midi_of(name: str) -> int:
    return int(pitch.Pitch(name).ps)


def nearest(pc: int, target: float, lo: int, hi: int) -> int:
    """The MIDI note of pitch class ``pc`` in ``lo…hi`` nearest ``target``."""
    return min((m for m in range(lo, hi + 1) if m % 12 == pc), key=lambda m: (abs(m - target), m))


def chord_at(plan: list[tuple[str, ...]], bar_index: int, beat: float, bar_ql: float = 4.0) -> Chord:
    """The chord of a bar plan (one or two chords per bar) at ``beat`` (0-based quarters)."""
    chords = plan[bar_index]
    k = min(len(chords) - 1, int(beat // (bar_ql / len(chords))))
    return parse_chord(chords[k])


def harmonise(lead: Line, plan, voicing, n: int, *, bar_offset: int = 0) -> list[Line]:
    """``n`` lines voicing every note of ``lead`` over the chord plan: ``voicing(top, chord)``
    returns ``n`` MIDI notes, top first. Rests, ties and marks follow the lead."""
    outs: list[Line] = [[] for _ in range(n)]
    for k, b in enumerate(lead):
        bars = [[] for _ in range(n)]
        t = 0.0
        for e in b:
            if e.is_rest:
                for nb in bars:
                    nb.append(replace(e))
            else:
                ch = chord_at(plan, k + bar_offset, t)
                mids = voicing(midi_of(e.pitches[0]), ch)
                for nb, m in zip(bars, mids):
                    nb.append(replace(e, pitches=(spell(m, ch),)))
            t += e.ql
        for out, nb in zip(outs, bars):
            out.append(nb)
    return outs


# ---------------------------------------------------------------------------------------------
# 1. jazz band: a blues in B-flat

KIT = {"ride": ("Ride Cymbal", 51, "F5", "x"), "hihat": ("Hi-Hat Pedal", 44, "D4", "x"),
       "snare": ("Snare Drum", 38, "C5", "normal"), "kick": ("Bass Drum", 36, "F4", "normal"),
       "crash": ("Crash Cymbal", 49, "A5", "x")}

BLUES = [("Bb7",), ("Eb7",), ("Bb7",), ("Fm7", "Bb7"), ("Eb7",), ("Edim7",), ("Bb7",), ("G7",),
         ("Cm7",), ("F7",), ("Bb7", "G7"), ("Cm7", "F7")]
INTRO = [("Cm7",), ("F7",), ("Bb7", "G7"), ("Cm7", "F7")]
TAG = [("Bb7",), ("Eb7",), ("Bb7",), ("Bb6",)]

HEAD = """
r/e F4/e Bb4/e C5/e Db5/e D5/q. | F5/q> Eb5/e Db5/e C5/q Bb4/q' |
r/e F4/e Bb4/e C5/e Db5/e D5/q. | C5/e Eb5/e~ Eb5/q D5/e C5/e Ab4/q' |
r/e G4/e Bb4/e C5/e Db5/e Eb5/q. | G4/e Bb4/e Db5/e E5/e~ E5/h |
F5/q> D5/e Bb4/e r/e F4/e Bb4/e D5/e | F5/e Eb5/e D5/e B4/e~ B4/h |
C5/q. Eb5/e r/e D5/e C5/e Bb4/e | A4/q. C5/e r/e Eb5/e D5/e C5/e |
Bb4/q' r/e D5/e~ D5/e B4/e G4/q' | C5/e Eb5/e G5/e Eb5/e F5/q.> r/e
"""
SHOUT = """
F5/q^ r/e F5/e> r/e D5/e F5/e G5/e>~ | G5/h F5/e Eb5/e Db5/q^ |
r/e D5/e> F5/e Bb5/e>~ Bb5/q Ab5/q' | Ab5/e G5/e F5/e Eb5/e D5/q^ r/q |
r/e G5/e> r/e G5/e> r/e Bb5/e>~ Bb5/q | Bb5/q^ G5/e E5/e Db5/q^ r/q |
F5/q^ r/e F5/e> r/e D5/e F5/e Ab5/e>~ | Ab5/h G5/e F5/e D5/q^ |
Eb5/q. G5/e~ G5/q Bb5/q^ | A5/q. G5/e~ G5/q F5/q^ |
F5/q^ D5/e Bb4/e B4/q^ D5/e F5/e | G5/e Eb5/e C5/e Eb5/e A5/q^ r/q
"""
RIFF = "r/e F4/e Bb4/e C5/e Db5/e D5/q."


def _guide_pads(plan, *, top: float = 62.0) -> list[list[int]]:
    """Three-note trombone pads (third, seventh, and fifth) per chord of the plan (in order),
    each voice moving to the nearest note of the next chord."""
    out, prev = [], [top, top - 4, top - 8]
    for c in (c for chords in plan for c in chords):
        ch = parse_chord(c)
        third, fifth = ch.pcs[1], ch.pcs[2]
        seventh = ch.pcs[3] if len(ch.pcs) > 3 else (ch.pcs[0] + 9) % 12
        voices = sorted((nearest(pc, p, 46, 67) for pc, p in zip((third, seventh, fifth), prev)),
                        reverse=True)
        if len(set(voices)) < 3:
            voices = sorted({*voices, nearest(ch.pcs[0], voices[-1] - 3, 46, 67)}, reverse=True)[:3]
        out.append(voices)
        prev = voices
    return out


def _per_chord(plan, notes: list[int]) -> Line:
    """One held note per chord (a whole bar, or half a bar each for two chords)."""
    bars, k = [], 0
    for chords in plan:
        b = []
        for c in chords:
            b.append(Ev((spell(notes[k], parse_chord(c)),), 4.0 / len(chords)))
            k += 1
        bars.append(b)
    return bars


def _pad_line(plan, voice: int) -> Line:
    return _per_chord(plan, [p[voice] for p in _guide_pads(plan)])


def _roots(plan, lo: int, hi: int, target: float) -> Line:
    return _per_chord(plan, [nearest(parse_chord(c).pcs[0], target, lo, hi)
                             for chords in plan for c in chords])


def half_step(root: str, midi: int, *, below: bool) -> str:
    """The chromatic approach note ``midi`` to ``root``: a leading note from below (D to
    E-flat, F-sharp to G), a flat from above (E to E-flat, D-flat to C)."""
    if not below:
        return spell(midi)
    p = pitch.Pitch(root).transpose("m-2")
    p.octave = 4
    p.octave += (midi - int(p.ps)) // 12
    return p.nameWithOctave


def walking_bass(plan, following: str, *, start: int = 34) -> Line:
    """Four quarters a bar: root, a chord tone, a chord tone (or the second chord's root), then
    a half step into the next bar's root (from below when it is nearer). Sounding pitch."""
    bars: Line = []
    prev = start
    for k, chords in enumerate(plan):
        nxt = parse_chord(plan[k + 1][0] if k + 1 < len(plan) else following)
        first = parse_chord(chords[0])
        root = nearest(first.pcs[0], prev, 28, 45)
        if len(chords) == 1:
            up = root < 38
            second = nearest(first.pcs[1] if up else first.pcs[2], root + (4 if up else -5), 28, 50)
            third = nearest(first.pcs[2] if up else first.pcs[1], second + (3 if up else -3), 28, 50)
            notes = [(root, first), (second, first), (third, first)]
        else:
            other = parse_chord(chords[1])
            second = nearest(first.pcs[2], root + 7 if root < 38 else root - 5, 28, 50)
            third = nearest(other.pcs[0], second, 28, 48)
            notes = [(root, first), (second, first), (third, other)]
        target = nearest(nxt.pcs[0], notes[-1][0], 28, 45)
        last = notes[-1][0]
        from_below = target - 1 >= 28 and abs(last - (target - 1)) <= abs(last - (target + 1))
        approach = target - 1 if from_below else target + 1
        if notes[-1][0] == approach:  # no repeated note before the approach: another chord tone
            m, c = notes[-1]
            others = [x for x in range(28, 51) if x % 12 in c.pcs and x not in (approach, notes[-2][0])]
            notes[-1] = (min(others, key=lambda x: abs(x - (notes[-2][0] + approach) / 2)), c)
        names = [spell(m, c) for m, c in notes]
        names.append(half_step(nxt.names[0], approach, below=from_below))
        bars.append([Ev((n,), 1.0) for n in names])
        prev = approach
    return bars


ROOTLESS = {"7": ("M3", "M6", "m7", "M9"), "m7": ("m3", "P5", "m7", "M9"),
            "dim7": ("P1", "m3", "d5", "d7"), "6": ("M3", "P5", "M6", "M9"),
            "": ("M3", "P5", "M6", "M9")}


def rootless(ch: Chord, prev: list[int] | None) -> list[str]:
    """A four-note rootless voicing of ``ch`` (bottom from E3 to C4), nearest ``prev``."""
    quality = re.fullmatch(r"[A-G](?:b|#)?(.*)", ch.symbol).group(1)
    root = pitch.Pitch(ch.names[0] + "3")
    tones = [root.transpose(i) for i in ROOTLESS[quality]]
    best = None
    for rot in range(4):
        names = [pitch.Pitch(t.name) for t in tones[rot:] + tones[:rot]]
        mids, last = [], None
        for p in names:
            m = p.pitchClass + 48
            while last is not None and m <= last:
                m += 12
            mids.append(m)
            last = m
        for shift in (-12, 0, 12):
            v = [m + shift for m in mids]
            if not 52 <= v[0] <= 60:
                continue
            score = sum(abs(a - b) for a, b in zip(v, prev)) if prev else abs(v[0] - 55)
            if best is None or score < best[0]:
                best = (score, v, names)
    _, v, names = best
    out = []
    for m, p in zip(v, names):
        q = pitch.Pitch(p.name)
        q.octave = 4
        q.octave += (m - int(q.ps)) // 12
        out.append(q.nameWithOctave)
    return out


COMP_ONE = ("{a}/q.' {a}/e' r/h", "r/q {a}/q' r/e {a}/e' r/q", "{a}/q' r/e {a}/e~ {a}/h")
COMP_TWO = ("{a}/q.' r/e {b}/q.' r/e", "{a}/q' r/q r/e {b}/e~ {b}/q")


def piano_comp(plan) -> Line:
    text, prev = [], None
    for k, chords in enumerate(plan):
        voicings = []
        for c in chords:
            names = rootless(parse_chord(c), prev)
            prev = [midi_of(n) for n in names]
            voicings.append("+".join(names).replace("-", "b"))
        if len(chords) == 1:
            text.append(COMP_ONE[k % len(COMP_ONE)].format(a=voicings[0]))
        else:
            text.append(COMP_TWO[k % len(COMP_TWO)].format(a=voicings[0], b=voicings[1]))
    return line(" | ".join(text))


def guitar_four(plan) -> Line:
    """Four to the bar: root, seventh (or sixth) and third, root on the low strings."""
    bars: Line = []
    for chords in plan:
        b = []
        for k, c in enumerate(chords):
            ch = parse_chord(c)
            root = nearest(ch.pcs[0], 45, 40, 51)
            upper = ch.pcs[3] if len(ch.pcs) > 3 else (ch.pcs[0] + 9) % 12
            seventh = nearest(upper, root + 10, root + 8, root + 11)
            third = nearest(ch.pcs[1], root + 15, root + 14, root + 17)
            notes = tuple(spell(m, ch, tensions=("M6",)) for m in (root, seventh, third))
            b.extend(Ev(notes, 1.0, "-") for _ in range(4 // len(chords)))
        bars.append(b)
    return bars


def drum_bar(*, hits: set[float] = frozenset(), crash: bool = False, fill: bool = False,
             time: bool = True) -> list[Ev]:
    """One bar on an eighth grid: ride (1, 2, 2&, 3, 4, 4&) and hi-hat foot on 2 and 4, kick and
    snare under the band's hits, a crash on beat 1, a snare fill on the last beats."""
    slots = []
    for i in range(8):
        beat = i / 2
        pieces = []
        if time and i in (0, 2, 3, 4, 6, 7):
            pieces.append("ride")
        if time and i in (2, 6):
            pieces.append("hihat")
        if beat in hits:
            pieces += ["kick", "snare"]
        if crash and i == 0:
            pieces = [p for p in pieces if p != "ride"] + ["crash", "kick"]
        if fill and i >= 5:
            pieces = [p for p in pieces if p != "ride"] + ["snare"]
        slots.append(tuple(dict.fromkeys(pieces)))
    out: list[Ev] = []
    for pieces in slots:
        if not pieces and out and out[-1].is_rest:
            out[-1].ql += 0.5
        else:
            out.append(Ev(tuple(f"kit:{p}" for p in pieces), 0.5, "" if pieces else ""))
    return out


def _hit_beats(lead: Line) -> list[set[float]]:
    out = []
    for b in lead:
        t, hits = 0.0, set()
        for e in b:
            if not e.is_rest and set(e.marks) & {">", "^"}:
                hits.add(t)
            t += e.ql
        out.append(hits)
    return out


def jazz_band() -> Piece:
    piece = Piece("Lantern Street Blues", "jazz-band-lantern-street-blues", key_fifths=-2,
                  bpm=152, tempo_text="Swing", repeat=(5, 16))
    plan = INTRO + BLUES + BLUES + TAG
    head, shout = line(HEAD), line(SHOUT)

    # saxes: the head as a drop-2 soli (bari doubles the lead two octaves down); in the shout
    # they reinforce the trumpets' voicing an octave down; the tag riff in octaves
    soli = harmonise(head, BLUES, lambda m, c: drop2(close_voicing(m, c)) + [m - 24], 5)
    shout_brass = harmonise(shout, BLUES, lambda m, c: close_voicing(m, c), 4)
    shout_roots = harmonise(shout, BLUES, lambda m, c: [nearest(c.pcs[0], 40, 34, 45)], 1)[0]
    riff = line(" | ".join([RIFF, "r/w", RIFF, "r/w"]))
    final = {"tpt": ["Bb5", "G5", "F5", "D5"], "tbn": ["F4", "D4", "C4", "Bb2"],
             "sax": ["D5", "C5", "G4", "D4", "Bb2"]}

    def tag_hits(voice_names: tuple[str, str]) -> Line:
        hit, last = voice_names
        return line(f"r/w | r/e {hit}/e^ r/q r/h | r/w | {last}/w>F")

    tag_tpt_hits = ["G5", "Eb5", "Db5", "Bb4"]  # Eb7 close under G5
    tag_tbn_hits = ["Eb4", "Db4", "Bb3", "Eb2"]
    sax_specs = [("Alto Sax 1", instrument.AltoSaxophone, 0), ("Alto Sax 2", instrument.AltoSaxophone, 0),
                 ("Tenor Sax 1", instrument.TenorSaxophone, -1),
                 ("Tenor Sax 2", instrument.TenorSaxophone, -1),
                 ("Baritone Sax", instrument.BaritoneSaxophone, -2)]
    for i, (name, cls, octv) in enumerate(sax_specs):
        shout_part = octave(shout_brass[i], -1) if i < 4 else shout_roots
        tag_riff = octave(riff, octv)
        tag = [b1 if k % 2 == 0 else b2 for k, (b1, b2) in
               enumerate(zip(tag_riff, line(f"r/w | r/w | r/w | {final['sax'][i]}/w>F")))]
        piece.add(PartSpec(name, make_inst(cls, name)),
                  [rests(4), dyn(soli[i], "mf"), dyn(shout_part, "f"), dyn(tag, "mf")])
        _tag_final_ff(piece.parts[-1][1])

    for i in range(4):
        name = f"Trumpet {i + 1}"
        intro = harmonise(line("r/w | r/w | r/w | r/h G5/q^ A5/q^"), INTRO, close_voicing, 4)[i]
        tag = tag_hits((tag_tpt_hits[i], final["tpt"][i]))
        piece.add(PartSpec(name, make_inst(instrument.Trumpet, name)),
                  [dyn(intro, "f"), rests(12), dyn(shout_brass[i], "ff"), dyn(tag, "f")])
        _tag_final_ff(piece.parts[-1][1])

    pads = [_pad_line(INTRO + BLUES, v) for v in range(3)]
    for i in range(4):
        name = "Bass Trombone" if i == 3 else f"Trombone {i + 1}"
        cls = instrument.BassTrombone if i == 3 else instrument.Trombone
        if i < 3:
            intro = pads[i][:3] + dyn([harmonise(line("r/h G4/q^ A4/q^"), INTRO[3:],
                                                 close_voicing, 3)[i][0]], "f")
            head_pad = pads[i][4:]
            shout_i = octave(shout_brass[i + 1], -1)  # 4-way close an octave down
        else:
            intro = _roots(INTRO[:3], 34, 45, 38) + dyn(line("r/h C3/q^ F2/q^"), "f")
            head_pad = _roots(BLUES, 34, 45, 38)
            shout_i = shout_roots
        intro = _hairpin(dyn(intro, "pp"), "<", 0, 2)
        head_pad = dyn(marked(head_pad, "-"), "p")
        tag = tag_hits((tag_tbn_hits[i], final["tbn"][i]))
        piece.add(PartSpec(name, make_inst(cls, name), clef="bass"),
                  [intro, head_pad, dyn(shout_i, "ff"), dyn(tag, "f")])
        _tag_final_ff(piece.parts[-1][1])

    # the rhythm section: real notes, not chord symbols
    comp = piano_comp(plan)
    comp[-1] = line("Bb2+F3+G3+C4+D4+F4/w>F")[0]
    piece.add(PartSpec("Piano", make_inst(instrument.Piano, "Piano"), staves=("treble", "bass")),
              [dyn(comp[:4], "mp"), comp[4:16], dyn(comp[16:28], "f"), dyn(comp[28:], "mf")])
    _tag_final_ff(piece.parts[-1][1])
    guitar = guitar_four(plan)
    guitar[-1] = line("Bb2+G3+D4/w>F")[0]
    piece.add(PartSpec("Guitar", make_inst(instrument.ElectricGuitar, "Guitar", program=26,
                                           transposition="P-8"), clef="treble"),
              [dyn(guitar[:16], "mp"), dyn(guitar[16:28], "f"), dyn(guitar[28:], "mf")])
    _tag_final_ff(piece.parts[-1][1])
    bass = walking_bass(plan[:-1], "Bb6")
    bass.append(line("Bb1/w>F")[0])
    piece.add(PartSpec("Bass", make_inst(instrument.AcousticBass, "Bass", transposition="P-8"),
                       clef="bass"),
              [dyn(bass[:16], "mf"), dyn(bass[16:28], "f"), dyn(bass[28:], "mf")])
    _tag_final_ff(piece.parts[-1][1])

    hits = _hit_beats(shout)
    drums = [drum_bar() for _ in range(3)] + [drum_bar(hits={2.0, 3.0})]
    drums += [drum_bar(crash=k == 0) for k in range(11)] + [drum_bar(fill=True)]
    drums += [drum_bar(hits=h, crash=k == 0) for k, h in enumerate(hits)]
    drums += [drum_bar(), drum_bar(hits={0.5}, time=True), drum_bar(fill=True),
              [Ev(("kit:crash", "kit:kick"), 4.0, ">F")]]
    piece.add(PartSpec("Drums", make_inst(instrument.Percussion, "Drums"), clef="percussion", kit=KIT),
              [dyn(drums[:4], "p"), dyn(drums[4:16], "mp"), dyn(drums[16:28], "f"),
               dyn(drums[28:], "mf")])
    _tag_final_ff(piece.parts[-1][1])
    return piece


def _tag_final_ff(ln: Line) -> None:
    """The last chord of the chart: fortissimo."""
    last = next(e for e in reversed(ln[-1]) if not e.is_rest)
    last.dynamic = "ff"


def _hairpin(ln: Line, kind: str, first_bar: int, last_bar: int) -> Line:
    """A hairpin from the first note of ``first_bar`` to the last note of ``last_bar``."""
    out = [[replace(e) for e in b] for b in ln]
    start = next(e for e in out[first_bar] if not e.is_rest)
    end = next(e for e in reversed(out[last_bar]) if not e.is_rest)
    start.hairpin, end.hairpin_end = kind, True
    return out


# ---------------------------------------------------------------------------------------------
# 2. brass band: a hymn tune in E-flat, twice (the second time with a soprano-cornet descant)

HYMN_PLAN = ("Eb/q Bb/q Ab/q Eb/q | Ab/q Eb/q Bb/h | Eb/q Fm/q Eb/q Ab/q | G/q G7/q Cm/h | "
             "Ab/q Cm/q Bb/q Eb/q | Fm/q Bb7/q Eb/h | Cm/q Ab/q Eb/q Fm/q | Eb/q Bb7/q Eb/h")
HYMN_S = """
Eb5/q D5/q C5/q Bb4/q | Ab4/q G4/q F4/h | G4/q Ab4/q Bb4/q C5/q | D5/q B4/q C5/h |
C5/q Eb5/q F5/q G5/q | Ab5/q F5/q G5/h | Eb5/q C5/q Bb4/q Ab4/q | G4/q F4/q Eb4/h
"""
HYMN_B = """
Eb3/q Bb2/q Ab2/q G2/q | Ab2/q Eb3/q Bb2/h | Eb3/q F3/q G3/q Ab3/q | G3/q G2/q C3/h |
Ab2/q C3/q D3/q Eb3/q | F3/q D3/q Eb3/h | C3/q Ab2/q G2/q F2/q | Bb2/q Bb2/q Eb2/h
"""
DESCANT = """
G5/q F5/q Ab5/q G5/q | C6/q Bb5/q Bb5/h | Bb5/q Ab5/q G5/q Ab5/q | B5/q D6/q C6/h |
Eb6/h Bb5/q Bb5/q | C6/q Bb5/q Bb5/h | G5/q Ab5/q Bb5/q C6/q | Bb5/q Ab5/q G5/h
"""


def phrased(ln: Line, every: int = 2) -> Line:
    """Slurs over each ``every``-bar phrase, as a hymn is sung."""
    out = [[replace(e) for e in b] for b in ln]
    for k in range(0, len(out), every):
        notes = [e for b in out[k:k + every] for e in b if not e.is_rest]
        if len(notes) > 1:
            notes[0].slur, notes[-1].slur_end = True, True
    return out


def ending(ln: Line, *, fermata: bool = True, rit_bar: int | None = None) -> Line:
    """The line with a fermata on its last note and "rit." over bar ``rit_bar``."""
    out = [[replace(e) for e in b] for b in ln]
    if fermata:
        last = next(e for e in reversed(out[-1]) if not e.is_rest)
        last.marks += "F"
    if rit_bar is not None:
        out[rit_bar][0].words += ("rit.",)
    return out


def timpani_from(bass: Line, tuned: dict[int, str]) -> Line:
    """Timpani strokes where the bass plays a note the drums are tuned to; rests elsewhere."""
    out = []
    for b in bass:
        nb = []
        for e in b:
            pc = None if e.is_rest else pitch.Pitch(e.pitches[0]).pitchClass
            if pc in tuned:
                nb.append(Ev((tuned[pc],), e.ql, ">" if e.ql < 2 else ""))
            elif nb and nb[-1].is_rest:
                nb[-1].ql += e.ql
            else:
                nb.append(Ev((), e.ql))
        out.append(nb)
    return out


def brass_band() -> Piece:
    piece = Piece("Calder Vale", "brass-band-calder-vale", key_fifths=-3, bpm=76,
                  tempo_text="Andante maestoso")
    S, B = line(HYMN_S), line(HYMN_B)
    A, T = inner_voices(HYMN_PLAN, S, B, tonic="E-")
    D = line(DESCANT)
    tail = slice(4, 8)

    def intro(ln: Line) -> Line:  # the last line of the hymn, softly, with a pause
        return ending(_hairpin(_hairpin(dyn(ln[tail], "pp"), "<", 0, 0), ">", 2, 3))

    def verse1(ln: Line, mark: str = "mp") -> Line:
        return _hairpin(_hairpin(dyn(phrased(ln), mark), "<", 4, 4), ">", 6, 7)

    def verse2(ln: Line, *, last: bool = True) -> Line:
        return ending(dyn(phrased(ln), "ff"), rit_bar=6)

    silent, silent4 = rests(8), rests(4)
    eb_cornet = make_inst(instrument.Trumpet, "Soprano Cornet in Eb", program=56, transposition="m3")
    bb = dict(program=56, transposition="M-2")
    horn = dict(program=60, transposition="M-6")
    baritone = dict(program=58, transposition="M-9")
    parts = [
        ("Soprano Cornet in Eb", eb_cornet, "treble", [silent4, silent, verse2(D)]),
        ("Solo Cornet", make_inst(instrument.Trumpet, "Solo Cornet", **bb), "treble",
         [silent4, verse1(S), verse2(S)]),
        ("Repiano Cornet", make_inst(instrument.Trumpet, "Repiano Cornet", **bb), "treble",
         [silent4, silent, verse2(S)]),
        ("2nd Cornet", make_inst(instrument.Trumpet, "2nd Cornet", **bb), "treble",
         [silent4, verse1(A, "p"), verse2(A)]),
        ("3rd Cornet", make_inst(instrument.Trumpet, "3rd Cornet", **bb), "treble",
         [silent4, verse1(octave(T, 1), "p"), verse2(octave(T, 1))]),
        ("Flugelhorn", make_inst(instrument.Trumpet, "Flugelhorn", **bb), "treble",
         [intro(S), rests(4) + verse1(S)[4:], verse2(S)]),
        ("Solo Tenor Horn", make_inst(instrument.Instrument, "Solo Tenor Horn", **horn), "treble",
         [intro(A), verse1(A, "p"), verse2(A)]),
        ("1st Tenor Horn", make_inst(instrument.Instrument, "1st Tenor Horn", **horn), "treble",
         [intro(T), verse1(T, "p"), verse2(T)]),
        ("2nd Tenor Horn", make_inst(instrument.Instrument, "2nd Tenor Horn", **horn), "treble",
         [silent4, verse1(octave(B, 1), "p"), verse2(octave(B, 1))]),
        ("1st Baritone", make_inst(instrument.Instrument, "1st Baritone", **baritone), "treble",
         [intro(T), verse1(T, "p"), verse2(T)]),
        ("2nd Baritone", make_inst(instrument.Instrument, "2nd Baritone", **baritone), "treble",
         [intro(octave(B, 1)), verse1(octave(B, 1), "p"), verse2(octave(B, 1))]),
        ("1st Trombone", make_inst(instrument.Trombone, "1st Trombone", transposition="M-9"),
         "treble", [silent4, rests(4) + verse1(T, "p")[4:], verse2(T)]),
        ("2nd Trombone", make_inst(instrument.Trombone, "2nd Trombone", transposition="M-9"),
         "treble", [silent4, rests(4) + verse1(octave(B, 1), "p")[4:], verse2(octave(B, 1))]),
        ("Bass Trombone", make_inst(instrument.BassTrombone, "Bass Trombone"), "bass",
         [silent4, rests(4) + verse1(B, "p")[4:], verse2(B)]),
        ("Euphonium", make_inst(instrument.Instrument, "Euphonium", **baritone), "treble",
         [silent4, verse1(octave(S, -1)), verse2(octave(S, -1))]),
        ("Eb Bass", make_inst(instrument.Tuba, "Eb Bass", program=58, transposition="M-13"),
         "treble", [intro(B), verse1(B, "p"), verse2(B)]),
        ("Bb Bass", make_inst(instrument.Tuba, "Bb Bass", program=58, transposition="M-16"),
         "treble", [silent4, verse1(octave(B, -1), "p"), verse2(octave(B, -1))]),
    ]
    for name, inst, clef_name, segments in parts:
        piece.add(PartSpec(name, inst, clef=clef_name), segments)
    timp = timpani_from(B, {3: "Eb3", 10: "Bb2"})
    timp_v1 = rests(7) + dyn(line("r/h Eb3/hR"), "p")
    timp_v2 = dyn(timp[:7], "f") + _hairpin(line("Bb2/q> Bb2/q> Eb3/hR"), "<", 0, 0)
    piece.add(PartSpec("Timpani", make_inst(instrument.Timpani, "Timpani"), clef="bass"),
              [silent4, timp_v1, ending(timp_v2)])
    return piece


# ---------------------------------------------------------------------------------------------
# 3. concert band: a festive march in B-flat (fanfare, theme, tutti, chorale, coda)

BAND_INTRO = ("Bb/q. Bb/e Bb/q Bb/q | Eb/h F/h | Gm/h Eb/h | F/w",
              "F5/q.^ F5/e' F5/q' Bb5/q^ | G5/h> A5/h> | Bb5/h> G5/h> | A5/w>",
              "Bb2/q.^ Bb2/e' Bb2/q' Bb2/q^ | Eb2/h> F2/h> | G2/h> Eb2/h> | F2/w>")
BAND_THEME = ("Bb/w | Eb/h F/h | F7/w | Bb/q Cm/q F/h | Bb/w | Eb/h Cm/h | Bb/h F7/h | Bb/w",
              "D5/q' Bb4/e' C5/e' D5/q' F5/q' | Eb5/q. D5/e C5/h | C5/q' A4/e' Bb4/e' C5/q' Eb5/q' | "
              "D5/q Eb5/q C5/h | D5/q' Bb4/e' C5/e' D5/q' F5/q' | G5/q. F5/e Eb5/q G5/q | "
              "F5/q D5/q Eb5/q C5/q | Bb4/h. r/q",
              "Bb2/w | Eb3/h F3/h | F2/h A2/h | Bb2/q C3/q F2/h | Bb2/w | Eb3/h C3/h | F2/w | Bb2/h. r/q")
BAND_CHORALE = ("Gm/h Cm/h | Bb/h F/h | Gm/h Cm/h | Bb/h F7/h",
                "D5/h Eb5/h | D5/h C5/h | Bb4/h Eb5/h | D5/h C5/h",
                "G2/h C3/h | Bb2/h A2/h | G2/h C3/h | F2/h F2/h")
BAND_CODA = ("Bb/w | Eb/h Cm/h | Bb/h F7/h | Bb/w",
             "F5/q' D5/e' Eb5/e' F5/q' Bb5/q' | G5/q. F5/e Eb5/q C5/q | F5/h Eb5/h | D5/w",
             "Bb2/w | Eb3/h C3/h | F2/h F2/h | Bb2/w")
BAND_PERC = {"snare": ("Snare Drum", 38, "C5", "normal"), "bass": ("Bass Drum", 36, "F4", "normal"),
             "cymbals": ("Crash Cymbals", 49, "A5", "x")}


def satb(plan: str, soprano: str, bass: str, *, tonic: str, **ranges) -> dict[str, Line]:
    """Soprano and bass as written, alto and tenor found by :func:`inner_voices`; a rest in
    the soprano and bass silences the inner voices too."""
    S, B = line(soprano), line(bass)
    A, T = inner_voices(plan, S, B, tonic=tonic, **ranges)
    if S[-1][-1].is_rest:  # the tune's last bar ends with a rest: so do the inner voices
        gap = S[-1][-1].ql
        for v in (A, T):
            last = v[-1][-1]
            v[-1][-1] = replace(last, ql=last.ql - gap, marks=last.marks.replace("~", ""))
            v[-1].append(Ev((), gap))
    return {"S": S, "A": A, "T": T, "B": B}


def _chopped(ln: Line, span: float, cell) -> Line:
    """Each note held ``span`` quarters or longer played as ``cell(pitches)`` once per whole
    ``span`` (the rest of it silent); shorter notes and rests stay, untied."""
    out = []
    for b in ln:
        nb = []
        for e in b:
            if e.is_rest or e.ql < span:
                nb.append(replace(e, marks=e.marks.replace("~", "")))
                continue
            for _ in range(int(e.ql // span)):
                nb += cell(e.pitches)
            if e.ql % span:
                nb.append(Ev((), e.ql % span))
        nb[0] = replace(nb[0], dynamic=b[0].dynamic, hairpin=b[0].hairpin)
        out.append(nb)
    return out


def afterbeats(ln: Line) -> Line:
    """Each held note as off-beat staccato eighths (the band's "pah")."""
    return _chopped(ln, 1.0, lambda pitches: [Ev((), 0.5), Ev(pitches, 0.5, "'")])


def on_beats(ln: Line) -> Line:
    """Each held note as staccato quarters on beats 1 and 3 (the band's "oom")."""
    return _chopped(ln, 2.0, lambda pitches: [Ev(pitches, 1.0, "'"), Ev((), 1.0)])


def concert_band() -> Piece:
    piece = Piece("Harbour Lights", "concert-band-harbour-lights", key_fifths=-2, bpm=120,
                  tempo_text="Allegro maestoso")
    intro = satb(*BAND_INTRO, tonic="B-", alto=(62, 80), tenor=(53, 72))  # a trumpet fanfare
    theme = satb(*BAND_THEME, tonic="B-")
    chorale = satb(*BAND_CHORALE, tonic="B-", alto=(55, 72), tenor=(48, 65))
    coda = satb(*BAND_CODA, tonic="B-")
    off = rests

    def cod(ln: Line) -> Line:  # crescendo to the end, rit. in the last two bars, pause
        return ending(_hairpin(dyn(ln, "mf"), "<", 0, 1), rit_bar=2)

    def ff(ln: Line) -> Line:
        return dyn(ln, "ff")

    def tune(ln: Line) -> Line:  # the theme as the band plays it the second time: full, f
        return dyn(phrased(ln, 4), "f")

    S, A, T, B = (theme[v] for v in "SATB")
    bb = dict(transposition="M-2")
    parts = [
        ("Piccolo", make_inst(instrument.Piccolo, "Piccolo"),
         [off(4), off(8), tune(octave(S, 1)), off(4), cod(octave(coda["S"], 1))]),
        ("Flute 1", make_inst(instrument.Flute, "Flute 1"),
         [ff(octave(intro["S"], 0)), dyn(phrased(octave(S, 1), 4), "mp"), tune(octave(S, 1)),
          off(4), cod(octave(coda["S"], 1))]),
        ("Flute 2", make_inst(instrument.Flute, "Flute 2"),
         [ff(intro["A"]), dyn(phrased(octave(A, 1), 4), "p"), tune(octave(A, 1)), off(4),
          cod(octave(coda["A"], 1))]),
        ("Oboe", make_inst(instrument.Oboe, "Oboe"),
         [ff(intro["S"]), dyn(phrased(S, 4), "mp"), tune(S), off(4), cod(coda["S"])]),
        ("Bassoon", make_inst(instrument.Bassoon, "Bassoon"),
         [ff(intro["B"]), dyn(on_beats(B), "p"), tune(B), dyn(phrased(chorale["B"]), "pp"),
          cod(coda["B"])], "bass"),
        ("Clarinet in Bb 1", make_inst(instrument.Clarinet, "Clarinet in Bb 1", **bb),
         [ff(intro["S"]), dyn(phrased(S, 4), "mp"), tune(S),
          _hairpin(dyn(phrased(chorale["S"]), "pp"), "<", 3, 3), cod(coda["S"])]),
        ("Clarinet in Bb 2", make_inst(instrument.Clarinet, "Clarinet in Bb 2", **bb),
         [ff(intro["A"]), dyn(afterbeats(A), "p"), tune(A),
          _hairpin(dyn(phrased(chorale["A"]), "pp"), "<", 3, 3), cod(coda["A"])]),
        ("Clarinet in Bb 3", make_inst(instrument.Clarinet, "Clarinet in Bb 3", **bb),
         [ff(intro["T"]), dyn(afterbeats(T), "p"), tune(T),
          _hairpin(dyn(phrased(chorale["T"]), "pp"), "<", 3, 3), cod(coda["T"])]),
        ("Bass Clarinet", make_inst(instrument.BassClarinet, "Bass Clarinet"),
         [ff(intro["B"]), dyn(on_beats(B), "p"), tune(B),
          _hairpin(dyn(phrased(chorale["B"]), "pp"), "<", 3, 3), cod(coda["B"])]),
        ("Alto Sax 1", make_inst(instrument.AltoSaxophone, "Alto Sax 1"),
         [ff(intro["A"]), dyn(afterbeats(A), "p"), tune(S),
          _hairpin(dyn(phrased(octave(chorale["S"], -1)), "pp"), "<", 3, 3), cod(coda["A"])]),
        ("Alto Sax 2", make_inst(instrument.AltoSaxophone, "Alto Sax 2"),
         [ff(intro["T"]), dyn(afterbeats(T), "p"), tune(A),
          _hairpin(dyn(phrased(chorale["A"]), "pp"), "<", 3, 3), cod(coda["T"])]),
        ("Tenor Sax", make_inst(instrument.TenorSaxophone, "Tenor Sax"),
         [ff(intro["T"]), off(8), tune(T),
          _hairpin(dyn(phrased(chorale["T"]), "pp"), "<", 3, 3), cod(coda["T"])]),
        ("Baritone Sax", make_inst(instrument.BaritoneSaxophone, "Baritone Sax"),
         [ff(intro["B"]), dyn(on_beats(B), "p"), tune(B), off(4), cod(coda["B"])]),
    ]
    for i in range(3):
        v = "SAT"[i]
        parts.append((f"Trumpet in Bb {i + 1}", make_inst(instrument.Trumpet, f"Trumpet in Bb {i + 1}", **bb),
                      [ff(intro[v]), off(8), tune(theme[v]), off(4), cod(coda[v])]))
    for i, v in enumerate("AT"):
        parts.append((f"Horn in F {i + 1}", make_inst(instrument.Horn, f"Horn in F {i + 1}"),
                      [ff(intro[v]), dyn(theme[v], "p"), tune(theme[v]),
                       _hairpin(dyn(phrased(chorale[v]), "pp"), "<", 3, 3), cod(coda[v])]))
    for i, (v, o) in enumerate((("T", 0), ("B", 1), ("B", 0))):
        parts.append((f"Trombone {i + 1}", make_inst(instrument.Trombone, f"Trombone {i + 1}"),
                      [ff(octave(intro[v], o)), off(8), tune(octave(theme[v], o)), off(4),
                       cod(octave(coda[v], o))], "bass"))
    parts.append(("Euphonium", make_inst(instrument.Instrument, "Euphonium", program=58),
                  [ff(intro["T"]), off(8), tune(octave(S, -1)), off(4), cod(coda["T"])], "bass"))
    parts.append(("Tuba", make_inst(instrument.Tuba, "Tuba"),
                  [ff(octave(intro["B"], -1)), dyn(on_beats(B), "p"), tune(octave(B, -1)), off(4),
                   cod(octave(coda["B"], -1))], "bass"))
    for name, inst, segments, *clef_name in parts:
        piece.add(PartSpec(name, inst, clef=clef_name[0] if clef_name else "treble"), segments)

    tuned = {10: "Bb2", 5: "F2", 3: "Eb3"}
    timp_coda = timpani_from(coda["B"], tuned)[:3] + line("Bb2/wR")
    piece.add(PartSpec("Timpani", make_inst(instrument.Timpani, "Timpani"), clef="bass"),
              [ff(timpani_from(intro["B"], tuned)), off(8), dyn(timpani_from(B, tuned), "f"),
               off(3) + dyn(line("F2/wR"), "pp"), cod(timp_coda)])
    march = "kit:bass/q kit:cymbals/q kit:bass+kit:snare/q kit:cymbals/q"
    perc_intro = line(f"kit:bass+kit:cymbals/q> r/q r/h | kit:bass+kit:cymbals/h> kit:bass/h | "
                      f"kit:bass+kit:cymbals/h> kit:bass/h | kit:snare/wR")
    perc_tune = line(" | ".join([march] * 7 + ["kit:bass+kit:cymbals/q> kit:snare/q kit:snare/q r/q"]))
    perc_coda = line(f"{march} | {march} | kit:bass/h kit:bass/h | kit:bass+kit:cymbals/w>")
    piece.add(PartSpec("Percussion", make_inst(instrument.Percussion, "Percussion"),
                       clef="percussion", kit=BAND_PERC),
              [_hairpin(ff(perc_intro), "<", 3, 3), off(8), dyn(perc_tune, "f"), off(4),
               cod(perc_coda)])
    return piece


# ---------------------------------------------------------------------------------------------
# 4. orchestra: a tune in D for strings, again for the winds, a climax for all, a quiet close

ORCH_THEME = ("D/h D/h | G/h D/h | G/h Em/h | Em/q Bm/q A/h | D/h D/h | Bm/q F#m/q G/h | "
              "Em/h D/q A7/q | D/w",
              "A4/q D5/q F#5/q. E5/e | D5/q B4/q A4/h | B4/q D5/q G5/q. F#5/e | E5/q D5/q C#5/h | "
              "A4/q D5/q F#5/q. E5/e | D5/q A5/q G5/q. F#5/e | E5/q G5/q F#5/q E5/q | D5/h. r/q",
              "D3/h F#3/h | G2/h F#2/h | G2/h E2/h | E3/q B2/q A2/h | D3/h F#3/h | B2/q F#2/q G2/h | "
              "E3/h A2/q A2/q | D3/h. r/q")
ORCH_CLIMAX = ("G/h D/q Em/q | F#m/q G/q A/q Bm/q | G/h. A/q | Em/h A7/h",
               "B5/h A5/q G5/q | A5/q B5/q C#6/q D6/q | D6/h. C#6/q | B5/h A5/h",
               "G2/h F#2/q E2/q | F#2/q G2/q A2/q B2/q | G2/h. A2/q | E2/h A2/h")
ORCH_CODA = ("D/h D/h | G/h D/h | Em/h A7/h | D/w",
             "A4/q D5/q F#5/q. E5/e | D5/q B4/q A4/h | B4/q G4/q A4/q C#5/q | D5/w",
             "D3/h F#3/h | G2/h F#2/h | E3/h C#3/h | D3/w")


def orchestra() -> Piece:
    piece = Piece("Morning on the Fell", "orchestra-morning-on-the-fell", key_fifths=2, bpm=84,
                  tempo_text="Andante", rit_bar=22)
    th = satb(*ORCH_THEME, tonic="D")
    cl = satb(*ORCH_CLIMAX, tonic="D", alto=(67, 86), tenor=(60, 79))
    co = satb(*ORCH_CODA, tonic="D")
    S, A, T, B = th["S"], th["A"], th["T"], th["B"]
    off = rests

    def legato(ln: Line, mark: str, every: int = 2) -> Line:
        return dyn(phrased(ln, every), mark)

    def swell(ln: Line, mark: str) -> Line:  # each 4-bar phrase rises to its third bar, falls
        return _hairpin(_hairpin(legato(ln, mark), "<", 4, 5), ">", 6, 7)

    def climax(ln: Line) -> Line:  # f, growing to ff at its peak; the bars' first notes accented
        out = _hairpin(dyn(ln, "f"), "<", 0, 1)
        for b in out:
            b[0] = replace(b[0], marks=">" + b[0].marks) if not b[0].is_rest else b[0]
        next(e for e in out[2] if not e.is_rest).dynamic = "ff"
        return out

    def close(ln: Line, mark: str = "pp") -> Line:
        return ending(legato(ln, mark))

    bb = dict(transposition="M-2")
    spec = [
        ("Flute 1", instrument.Flute, {}, "treble",
         [off(8), swell(octave(S, 1), "mf"), climax(cl["S"]), off(3) + close(co["S"][3:])]),
        ("Flute 2", instrument.Flute, {}, "treble",
         [off(8), swell(S, "mf"), climax(cl["A"]), off(4)]),
        ("Oboe 1", instrument.Oboe, {}, "treble",
         [off(8), swell(S, "mf"), climax(cl["S"]), close(co["S"], "p")]),
        ("Oboe 2", instrument.Oboe, {}, "treble",
         [off(8), swell(A, "mp"), climax(cl["A"]), off(4)]),
        ("Clarinet in Bb 1", instrument.Clarinet, bb, "treble",
         [off(8), swell(A, "mp"), climax(octave(cl["A"], -1)), off(4)]),
        ("Clarinet in Bb 2", instrument.Clarinet, bb, "treble",
         [off(8), swell(T, "mp"), climax(octave(cl["T"], -1)), off(4)]),
        ("Bassoon 1", instrument.Bassoon, {}, "bass",
         [off(8), swell(T, "mp"), climax(octave(cl["T"], -1)), off(4)]),
        ("Bassoon 2", instrument.Bassoon, {}, "bass",
         [off(8), swell(B, "mp"), climax(cl["B"]), off(4)]),
    ]
    for i, (v, o) in enumerate((("A", -1), ("T", -1), ("T", -1), ("B", 1))):
        theme_part = legato(octave(th[v], o if v == "B" else 0), "pp") if i < 2 else off(8)
        spec.append((f"Horn in F {i + 1}", instrument.Horn, {}, "treble",
                     [off(8) if i >= 2 else theme_part,
                      swell(octave(th[v], o if v == "B" else 0), "mp") if i < 2 else off(8),
                      climax(octave(cl[v], o)), off(3) + close(co["T" if i % 2 else "A"][3:])
                      if i < 2 else off(4)]))
    for i, v in enumerate("TA"):
        spec.append((f"Trumpet in Bb {i + 1}", instrument.Trumpet, bb, "treble",
                     [off(16), climax(octave(cl[v], -1 if v == "A" else 0)), off(4)]))
    for name, cls, v, o in (("Trombone 1", instrument.Trombone, "T", -1),
                            ("Trombone 2", instrument.Trombone, "B", 1),
                            ("Bass Trombone", instrument.BassTrombone, "B", 0)):
        spec.append((name, cls, {}, "bass", [off(16), climax(octave(cl[v], o)), off(4)]))
    spec.append(("Tuba", instrument.Tuba, {}, "bass", [off(16), climax(cl["B"]), off(4)]))
    strings = [
        ("Violin I", instrument.Violin, "treble",
         [swell(S, "p"), off(4) + _hairpin(legato(S[4:], "mp"), "<", 0, 2), climax(cl["S"]),
          close(co["A"])]),
        ("Violin II", instrument.Violin, "treble",
         [swell(A, "p"), legato(A, "p"), climax(octave(cl["S"], -1)), close(co["T"])]),
        ("Viola", instrument.Viola, "alto",
         [swell(T, "p"), legato(T, "p"), climax(octave(cl["T"], -1)), close(octave(co["B"], 1))]),
        ("Violoncello", instrument.Violoncello, "bass",
         [swell(B, "p"), legato(B, "p"), climax(octave(cl["B"], 1)), close(co["B"])]),
        ("Contrabass", instrument.Contrabass, "bass",
         [swell(octave(B, -1), "p"), legato(octave(B, -1), "p"), climax(cl["B"]),
          close(octave(co["B"], -1))]),
    ]
    for name, cls, kw, clef_name, segments in spec:
        piece.add(PartSpec(name, make_inst(cls, name, **kw), clef=clef_name), segments)
    tuned = {2: "D3", 9: "A2"}
    timp = dyn(timpani_from(cl["B"], tuned)[:2], "f") + \
        _hairpin(dyn(line("r/h. A2/q> | r/h A2/hR"), "f"), "<", 1, 1)
    piece.add(PartSpec("Timpani", make_inst(instrument.Timpani, "Timpani"), clef="bass"),
              [off(16), timp, off(3) + ending(dyn(line("D3/wR"), "pp"))])
    for name, cls, clef_name, segments in strings:
        piece.add(PartSpec(name, make_inst(cls, name), clef=clef_name), segments)
    return piece


PIECES = (jazz_band, brass_band, concert_band, orchestra)


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else ROOT / "scores"
    out_dir.mkdir(parents=True, exist_ok=True)
    for make in PIECES:
        print(write(make(), out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
