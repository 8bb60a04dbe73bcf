"""Write the chamber and choir demo scores in ``scores/`` (solo … sextet, choir) with music21.

    python scripts/demo_scores.py            # write them all
    python scripts/demo_scores.py --check    # and list parallel fifths/octaves between parts

Each piece is written out bar by bar in a small text notation, one string per staff, bars
separated by ``|``, always at concert (sounding) pitch; transposing instruments (clarinet in
B♭, horn in F) are turned into written pitch on export, as a player's part shows them.

Notes: ``F#5q.`` = pitch (music21 spelling, ``-`` is flat) + duration ``w h q e s`` (whole …
16th, an optional ``3`` for a triplet) + dots; a duration left out repeats the previous one.
``D4+F#4+A4h`` is a chord, ``rq`` a rest, ``R`` a whole-bar rest. Marks after a note:
``'`` staccato, ``>`` accent, ``_`` tenuto, ``^`` fermata, ``,`` breath mark, ``~`` tie to the
next note, ``(`` / ``)`` slur start / end. Other tokens: ``!pp`` … ``!ff`` a dynamic, ``<`` / ``>``
a crescendo / diminuendo from the next note, ``=`` the hairpin ends on the note before,
``@rit.`` words (``_`` for a space), ``T=Andante=66`` a tempo mark, ``&`` the next voice of the
bar (from its start), ``{`` / ``}`` at a bar's start / end a repeat sign.
Lyrics: one syllable per sung note (tied notes count once); ``Glo- ri- a`` joins syllables,
``_`` holds the previous syllable over a note (a melisma).
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from music21 import (articulations, bar, clef, duration, dynamics, expressions, instrument,
                     key, layout, metadata, meter, note, chord, spanner, stream, tempo, tie)

SCORES = Path(__file__).resolve().parent.parent / "scores"
COMPOSER = "score2audio demo"
ENCODING_DATE = "2026-11-21"

LENGTHS = {"w": 4.0, "h": 2.0, "q": 1.0, "e": 0.5, "s": 0.25}
DYNAMIC_MARKS = {"ppp", "pp", "p", "mp", "mf", "f", "ff", "fff", "sfz", "fp"}
NOTE = re.compile(r"^(?P<pitch>r|R|[A-G](?:#{1,2}|-{1,2})?\d(?:\+[A-G](?:#{1,2}|-{1,2})?\d)*)"
                  r"(?P<len>[whqes])?(?P<triplet>3)?(?P<dots>\.*)(?P<marks>[')(>_^,~]*)$")
CLEFS = {"treble": clef.TrebleClef, "bass": clef.BassClef, "alto": clef.AltoClef,
         "tenor": clef.Treble8vbClef}


@dataclass(frozen=True)
class Staff:
    """One staff of one player: its music (bars separated by ``|``) and how to print it."""

    music: str
    clef: str = "treble"
    lyrics: str = ""


@dataclass(frozen=True)
class Player:
    """A part: a name the instrument map knows, a music21 instrument, one or two staves."""

    name: str
    make: type
    staves: tuple[Staff, ...]
    abbreviation: str = ""


@dataclass(frozen=True)
class Piece:
    slug: str
    title: str
    ensemble: str             # the template the piece is written for
    key_fifths: int
    time: str
    players: tuple[Player, ...]


class NotationError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# the text notation → music21


class _StaffBuilder:
    """Builds one staff (a Part or PartStaff) from its text, bar by bar."""

    def __init__(self, where: str, bar_length: float):
        self.where = where
        self.bar_length = bar_length
        self.spanners: list = []
        self.notes: list = []          # every sounding note/chord in order, for lyrics
        self.last_length = 1.0
        self.open_slur = {}            # voice → first note
        self.open_tie = {}             # voice → note/chord tied onward
        self.hairpin = None            # (class, first note or None)
        self.last_note = None

    def measure(self, number: int, text: str) -> stream.Measure:
        m = stream.Measure(number=number)
        text = text.strip()
        if text.startswith("{"):
            m.leftBarline = bar.Repeat(direction="start")
            text = text[1:]
        if text.endswith("}"):
            m.rightBarline = bar.Repeat(direction="end")
            text = text[:-1]
        voices = [v.split() for v in text.split("&")]
        targets = [m] if len(voices) == 1 else [stream.Voice(id=str(i + 1)) for i in range(len(voices))]
        for v, (tokens, target) in enumerate(zip(voices, targets)):
            offset = 0.0
            for token in tokens:
                offset += self._token(token, target, m, offset, v, number)
            if abs(offset - self.bar_length) > 1e-6:
                raise NotationError(f"{self.where}, bar {number}: voice {v + 1} lasts {offset:g} "
                                    f"quarters, not {self.bar_length:g}")
        if len(voices) > 1:
            for target in targets:
                m.insert(0, target)
        return m

    def _token(self, token: str, target, m, offset: float, voice: int, number: int) -> float:
        if token.startswith("!"):
            if token[1:] not in DYNAMIC_MARKS:
                raise NotationError(f"{self.where}, bar {number}: unknown dynamic {token}")
            m.insert(offset, dynamics.Dynamic(token[1:]))
            return 0.0
        if token in ("<", ">"):
            self.hairpin = (dynamics.Crescendo if token == "<" else dynamics.Diminuendo, None)
            return 0.0
        if token == "=":
            if self.hairpin is None or self.hairpin[1] is None:
                raise NotationError(f"{self.where}, bar {number}: '=' without a hairpin")
            self.spanners.append(self.hairpin[0](self.hairpin[1], self.last_note))
            self.hairpin = None
            return 0.0
        if token.startswith("@"):
            m.insert(offset, expressions.TextExpression(token[1:].replace("_", " ")))
            return 0.0
        if token.startswith("T="):
            _, words, bpm = token.split("=")
            m.insert(offset, tempo.MetronomeMark(text=words.replace("_", " "), number=int(bpm),
                                                 referent=duration.Duration(1.0)))
            return 0.0
        found = NOTE.match(token)
        if not found:
            raise NotationError(f"{self.where}, bar {number}: cannot read {token!r}")
        if found["pitch"] == "R":
            target.insert(offset, note.Rest(quarterLength=self.bar_length - offset))
            return self.bar_length - offset
        length = self._length(found) if found["len"] else self.last_length
        self.last_length = length
        if found["pitch"] == "r":
            target.insert(offset, note.Rest(quarterLength=length))
            return length
        pitches = found["pitch"].split("+")
        el = note.Note(pitches[0]) if len(pitches) == 1 else chord.Chord(pitches)
        el.duration = duration.Duration(length)
        self._marks(el, found["marks"], voice)
        target.insert(offset, el)
        return length

    @staticmethod
    def _length(found) -> float:
        length = Fraction(LENGTHS[found["len"]]).limit_denominator()
        if found["triplet"]:
            length = length * Fraction(2, 3)
        dotted, add = length, length
        for _ in found["dots"]:
            add /= 2
            dotted += add
        return dotted

    def _marks(self, el, marks: str, voice: int) -> None:
        previous = self.open_tie.pop(voice, None)
        if previous is not None:
            previous_kind = previous.tie.type if previous.tie else None
            previous.tie = tie.Tie("continue" if previous_kind == "stop" else "start")
            el.tie = tie.Tie("stop")
        else:
            self.notes.append(el)
        for mark, make in (("'", articulations.Staccato), (">", articulations.Accent),
                           ("_", articulations.Tenuto), (",", articulations.BreathMark)):
            if mark in marks:
                el.articulations.append(make())
        if "^" in marks:
            el.expressions.append(expressions.Fermata())
        if ")" in marks:
            first = self.open_slur.pop(voice, None)
            if first is not None and first is not el:
                self.spanners.append(spanner.Slur(first, el))
        if "(" in marks:
            self.open_slur[voice] = el
        if "~" in marks:
            self.open_tie[voice] = el
        if self.hairpin is not None and self.hairpin[1] is None:
            self.hairpin = (self.hairpin[0], el)
        self.last_note = el


def _add_lyrics(notes: list, text: str, where: str) -> None:
    syllables = text.split()
    if len(syllables) != len(notes):
        raise NotationError(f"{where}: {len(syllables)} syllables for {len(notes)} notes")
    joined = False  # the previous syllable continues into this one
    for el, syllable in zip(notes, syllables):
        if syllable == "_":
            continue
        ends_open = syllable.endswith("-")
        text_only = syllable.rstrip("-").replace("~", " ")
        kind = ("middle" if ends_open else "end") if joined else ("begin" if ends_open else "single")
        el.lyrics.append(note.Lyric(text=text_only, syllabic=kind, number=1))
        joined = ends_open


def _staff(piece: Piece, player: Player, number: int, staff: Staff, index: int,
           cls) -> stream.Stream:
    num, den = (int(x) for x in piece.time.split("/"))
    bar_length = num * 4.0 / den
    where = f"{piece.slug}: {player.name}" + (f" staff {index + 1}" if len(player.staves) > 1 else "")
    builder = _StaffBuilder(where, bar_length)
    part = cls()
    part.id = f"P{number}" + (f"-Staff{index + 1}" if len(player.staves) > 1 else "")
    inst = player.make()
    inst.instrumentId = f"P{number}-I1"
    inst.partId = f"P{number}"
    inst.partName = player.name
    inst.partAbbreviation = player.abbreviation or None
    part.partName = player.name
    part.insert(0, inst)
    bars = [b for b in staff.music.split("|") if b.strip()]
    for n, text in enumerate(bars, start=1):
        m = builder.measure(n, text)
        if n == 1:
            m.insert(0, CLEFS[staff.clef]())
            m.insert(0, key.KeySignature(piece.key_fifths))
            m.insert(0, meter.TimeSignature(piece.time))
        if n == len(bars) and m.rightBarline is None:
            m.rightBarline = bar.Barline("final")
        part.append(m)
    for sp in builder.spanners:
        part.insert(0, sp)
    if builder.hairpin is not None or builder.open_slur or builder.open_tie:
        raise NotationError(f"{where}: a hairpin, slur or tie is left open at the end")
    if staff.lyrics:
        _add_lyrics(builder.notes, staff.lyrics, where)
    return part


def build(piece: Piece) -> stream.Score:
    """The piece as a music21 score at written pitch, ready to write as MusicXML."""
    score = stream.Score()
    score.metadata = metadata.Metadata(title=piece.title, composer=COMPOSER)
    lengths = set()
    for number, player in enumerate(piece.players, start=1):
        if len(player.staves) == 1:
            part = _staff(piece, player, number, player.staves[0], 0, stream.Part)
            if player.make().transposition is not None:
                part.atSoundingPitch = True
                part.toWrittenPitch(inPlace=True)
            score.insert(0, part)
            lengths.add(len(part.getElementsByClass(stream.Measure)))
            continue
        staves = [_staff(piece, player, number, s, i, stream.PartStaff) for i, s in enumerate(player.staves)]
        for s in staves:
            score.insert(0, s)
            lengths.add(len(s.getElementsByClass(stream.Measure)))
        score.insert(0, layout.StaffGroup(staves, name=player.name, symbol="brace"))
    if len(lengths) != 1:
        raise NotationError(f"{piece.slug}: the staves have different numbers of bars {sorted(lengths)}")
    return score


def write(piece: Piece, folder: Path = SCORES) -> Path:
    path = folder / f"{piece.slug}.musicxml"
    build(piece).write("musicxml", fp=str(path))
    # music21 stamps today's date: a fixed one keeps a regenerated file identical
    text = re.sub(r"<encoding-date>[^<]*</encoding-date>", f"<encoding-date>{ENCODING_DATE}</encoding-date>",
                  path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# a composer's check: parallel fifths and octaves between any two parts


def _sounding(part) -> list[tuple[float, float, int]]:
    """``(start, end, midi)`` of every sounding pitch of the part, tied notes joined."""
    spans = []
    for el in part.flatten().notes:
        start = float(el.offset)
        end = start + float(el.quarterLength)
        for p in el.pitches:
            if el.tie is not None and el.tie.type in ("stop", "continue"):
                for k, (s0, _, m) in enumerate(spans):
                    if m == p.midi and abs(spans[k][1] - start) < 1e-6:
                        spans[k] = (s0, end, m)
                        break
                continue
            spans.append((start, end, p.midi))
    return spans


def parallels(score: stream.Score) -> list[str]:
    """'bar b beat n: A / B parallel fifths' for every pair of lines moving in the same
    direction from one perfect fifth (or octave/unison) to the next; a piano counts as its two
    outer lines (the right hand's top, the left hand's bass)."""
    sounding = score.toSoundingPitch()
    lines, rests = [], []
    seen: dict[str, int] = {}
    for part in sounding.parts:
        name = part.partName or str(part.id)
        seen[name] = seen.get(name, 0) + 1
        top = seen[name] == 1
        label = f"{name} {'RH' if top else 'LH'}" if isinstance(part, stream.PartStaff) else name
        lines.append((label, _sounding(part), max if top else min))
        rests.append({float(r.offset) for r in part.flatten().getElementsByClass(note.Rest)})
    bar_length = sounding.parts[0].getElementsByClass(stream.Measure)[0].barDuration.quarterLength
    found = []
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            (na, a, pick_a), (nb, b, pick_b) = lines[i], lines[j]
            # rests are times too: a fifth before a rest and one after it are not parallel
            times = sorted({t for t, _, _ in a} | {t for t, _, _ in b} | rests[i] | rests[j])

            def at(spans, pick, t):
                now = [m for s0, e, m in spans if s0 <= t + 1e-9 < e]
                return pick(now) if now else None
            prev = None
            for t in times:
                pa, pb = at(a, pick_a, t), at(b, pick_b, t)
                if pa is None or pb is None:
                    prev = None
                    continue
                if prev is not None:
                    qa, qb = prev
                    moved = pa != qa and pb != qb and (pa - qa) * (pb - qb) > 0
                    before, now = abs(qa - qb) % 12, abs(pa - pb) % 12
                    if moved and before == now and now in (0, 7):
                        kind = "fifths" if now == 7 else "octaves"
                        found.append(f"bar {int(t // bar_length) + 1} beat {t % bar_length + 1:g}: "
                                     f"{na} / {nb} parallel {kind}")
                prev = (pa, pb)
    return found


# ---------------------------------------------------------------------------------------------
# the pieces


# String quartet, D major: A (bars 1–8, a period ending on a perfect cadence), B (9–12, B minor
# rising by sequence to the dominant, ff), A′ (13–16, the theme pp, rit., fermata).
QUARTET = Piece(
    slug="string-quartet", title="Andante for String Quartet", ensemble="quartet",
    key_fifths=2, time="4/4",
    players=(
        Player("Violin I", instrument.Violin, (Staff(
            "T=Andante=66 !p @dolce F#5q.( G5e A5h) | B5q( G5q E5h) | < D5q( F#5q E5q G5q) = |"
            " !mf > F#5h( E5h) = | !p F#5q.( G5e A5q) D6q | < D6q( C#6e B5e) B5q( A5q) = |"
            " !mf > A5q( F#5q G5q E5q) = | !p D5h. rq |"
            " < B4q.( C#5e D5q) F#5q | D5q.( E5e F#5q) E5q = | !f < G5q.( A5e B5q) D6q = |"
            " !ff C#6q.> B5e > A5q G5q = |"
            " !pp F#5q.( G5e A5h) | < B5q( G5q E5h) = | !p @rit. > F#5q( A5q G5q E5q) = |"
            " !pp D5w^"),), "Vln. I"),
        Player("Violin II", instrument.Violin, (Staff(
            "!p D5q.( E5e F#5h) | D5q D5q C#5h | < B4h. E5q = | !mf > D5h( C#5h) = |"
            " !p D5q.( E5e F#5q) F#5q | < B5q( A5e G5e) G5h = | !mf > F#5q D5q D5q C#5q = |"
            " !p A4h. rq |"
            " < F#4e F#4 F#4 F#4 F#4 F#4 F#4 F#4 | B4e B4 B4 B4 A4 A4 A4 A4 = |"
            " !f < G4e G4 G4 G4 B4 B4 B4 B4 = | !ff E5e E5 E5 E5 > E5 E5 E5 E5 = |"
            " !pp D5q.( E5e F#5h) | < D5q D5q A4h = | !p > D5h D5q C#5q = | !pp A4w^"),), "Vln. II"),
        Player("Viola", instrument.Viola, (Staff(
            "!p A4w | G4h A4h | < F#4q D4q E4q C#4q = | !mf > A3h A3h = | !p A3h A3q B3q |"
            " < D4h E4q C#4q = | !mf > D4h. E4q = | !p F#4h. rq |"
            " < D4e D4 D4 D4 D4 D4 C#4 C#4 | D4e D4 D4 D4 D4 D4 D4 D4 = |"
            " !f < E4e E4 E4 E4 E4 E4 E4 E4 = | !ff C#4e C#4 C#4 C#4 > C#4 C#4 C#4 C#4 = |"
            " !pp A3h D4h | < D4h E4h = | !p > A4q F#4q G4q A4q = | !pp F#4w^", "alto"),), "Vla."),
        Player("Violoncello", instrument.Violoncello, (Staff(
            "!p D3q' A2q' D3q' F#3q' | G3q B3q A3q A2q | < B2q D3q G3q A3q = | !mf > D3h A2h = |"
            " !p D3q' A2q' F#3q' B2q' | < G2h E3q A2q = | !mf > D3h B2q A2q = | !p D3h. rq |"
            " < B2h. A#2q | G2h F#2h = | !f < E2h G#2h = | !ff A2q> A2q> > A2q A2q = |"
            " !pp D3w | < G3q B3q A3q C#3q = | !p > D3h B2q A2q = | !pp D3w^", "bass"),), "Vc."),
    ))


def _nocturne_bar(bass: str, low: str, mid: str, high: str) -> str:
    """A nocturne's left hand: the bass held through the bar under a rising-falling arpeggio."""
    return f"{bass}h. & re {low}e {mid} {high} {mid} {low}"


# Piano nocturne, E♭ major, 3/4: intro (1–2), A (3–10, repeated: a period in E♭), B (11–16,
# C minor rising through A♭ to a ff climax on the dominant), coda (17–21: the theme's close
# with the A♭-minor colour, rit., fermata).
_NOCTURNE_LH = [("E-2", "B-2", "E-3", "G3")] * 3 + [
    ("A-1", "E-2", "A-2", "C3"), ("B-1", "F2", "A-2", "D3"), ("E-2", "B-2", "E-3", "G3"),
    ("C2", "G2", "C3", "E-3"), ("F2", "C3", "E-3", "A-3"), ("B-1", "F2", "A-2", "D3"),
    ("E-2", "B-2", "E-3", "G3"),
    ("C2", "G2", "C3", "E-3"), ("B1", "G2", "D3", "F3"), ("C2", "G2", "C3", "E-3"),
    ("A-1", "E-2", "A-2", "C3"), ("B-1+B-2", "F2", "A-2", "D3"), ("E-2", "B-2", "D-3", "G3"),
    ("A-1", "E-2", "A-2", "C3"), ("A-1", "E-2", "A-2", "C-3")]
NOCTURNE = Piece(
    slug="piano-nocturne", title="Nocturne in E-flat major", ensemble="solo",
    key_fifths=-3, time="3/4",
    players=(Player("Piano", instrument.Piano, (
        Staff("T=Andante_cantabile=80 !p R | rh B-4q' | { @dolce G4q.( A-4e B-4q | A-4q C5q E-5q) |"
              " D5q.( C5e B-4e A-4e | G4h) B-4q' | !mf C5q.( D5e E-5q | F5q. E-5e C5q) |"
              " > F5q( E-5e D5e C5e D5e = | !p E-5h) B-4q' } |"
              " < E-5q.( D5e C5q | D5q F5q A-5q) | G5q.( F5e E-5q) = | !f A-5q.( B-5e C6q) |"
              " !ff B-5+D6q> A-5+C6q> F5+B-5q> | > G5h( D-5q) = |"
              " !p C5q( E-5q F5e G5e) | !f A-5q.>( E-5e C-5q) | @rit. > B-4q( E-5q. D5e) = |"
              " !p E-5q( B-4q G4q) | !pp G4+B-4+E-5h.^"),
        Staff(" | ".join(("{ " if n == 3 else "") + _nocturne_bar(*bar) + (" }" if n == 10 else "")
                         for n, bar in enumerate(_NOCTURNE_LH, start=1))
              + " | B-1h. & re E-2e G2 B-2 A-2 D3 | " + _nocturne_bar("E-2", "B-2", "E-3", "G3")
              + " | E-2+B-2+E-3h.^", "bass"),
    ), "Pno."),))


def _throb(half_bars: list[str], marks: dict[int, str] | None = None) -> str:
    """A right hand of repeated eighth-note chords, one chord per half bar (4/4), with tokens
    (dynamics, hairpins) put before the given half bars."""
    marks = marks or {}
    bars = []
    for n in range(0, len(half_bars), 2):
        halves = []
        for k in (n, n + 1):
            c = half_bars[k]
            halves.append(f"{marks.get(k, '')} {c}e {c} {c} {c}".strip())
        bars.append(" ".join(halves))
    return " | ".join(bars)


# Violin and piano, G major: A (1–8, a period: half cadence in 4, perfect cadence in 8), B (9–12,
# E minor rising to ff on D7), A′ (13–16, pp, rit., fermata). The piano throbs in eighths.
_DUET_RH = ["G3+B3+D4", "B3+D4+G4", "C4+E4+G4", "B3+D4+G4", "A3+C4+E4", "F#3+A3+C4",
            "F#3+A3+D4", "F#3+A3+D4", "G3+B3+D4", "G3+B3+D4", "E3+G3+C4", "G3+C#4+E4",
            "F#3+A3+D4", "F#3+A3+C4", None, "G3+B3+D4",
            "G3+B3+E4", "G3+B3+E4", "A3+C4+E4", "F#3+A3+B3", "G3+B3+E4", "A3+C4+E4",
            "A3+C4+D4+F#4", "A3+C4+D4+F#4",
            "G3+B3+D4", "B3+D4+G4", "C4+E4+G4", "B3+D4+G4", "A3+C4+E4", "F#3+A3+C4"]
_DUET_RH_TEXT = _throb([c or "G3+B3+D4" for c in _DUET_RH],
                       {0: "!pp", 8: "!pp", 16: "!mf <", 21: "=", 22: "!f", 24: "!pp",
                        28: "@rit."}).split(" | ")
_DUET_RH_TEXT[7] = "G3+B3+D4e G3+B3+D4 F#3+A3+C4 F#3+A3+C4 G3+B3+D4 G3+B3+D4 G3+B3+D4 G3+B3+D4"
_DUET_RH_TEXT[11] = ("!f A3+C4+D4+F#4e> A3+C4+D4+F#4 A3+C4+D4+F#4 A3+C4+D4+F#4"
                     " > A3+C4+D4+F#4 A3+C4+D4+F#4 A3+C4+D4+F#4 A3+C4+D4+F#4 =")
DUET = Piece(
    slug="duet-romance", title="Romance for Violin and Piano", ensemble="duet",
    key_fifths=1, time="4/4",
    players=(
        Player("Violin", instrument.Violin, (Staff(
            "T=Andante_con_moto=76 !p @espressivo B4q.( C5e D5h) | E5q( C5q) D5q( B4q) |"
            " C5q( A4q) F#4q( A4q) | A4h. rq | B4q.( C5e D5h) | < E5q( G5q) A5q( G5q) = |"
            " !mf F#5q( D5q A5q) C5q | B4q( A4q) G4h |"
            " !f G5q.( F#5e E5q) B4q | < C5q.( D5e E5q) D#5q | E5q( G5q B5q) A5q = |"
            " !ff C6q.>( B5e > A5q) F#5q = |"
            " !pp B4q.( C5e D5h) | E5q( C5q) D5q( B4q) | @rit. C5q( A4q) F#4q( A4q) | G4w^"),),
            "Vln."),
        Player("Piano", instrument.Piano, (
            Staff(" | ".join(_DUET_RH_TEXT) + " | G3+B3+D4w^"),
            Staff("G2h G2h | C3h B2h | A2h D3h | D3h D2h | G2h G2h | C3h A2h | D3h D3h |"
                  " D3q D3q G2h | E2h B2h | A2h B2h | E2h A2h | D2+D3h> D2+D3h |"
                  " G2h G2h | C3h B2h | A2h D3h | G2w^", "bass"),
        ), "Pno."),
    ))


def _rocking(chords: list[str]) -> str:
    """A right hand rocking through each bar's three-note chord in eighths (6/8): a b c b a b."""
    bars = []
    for c in chords:
        if " " in c or not c[-1].isdigit():  # written out
            bars.append(c)
            continue
        a, b, top = c.split("+")
        bars.append(f"{a}e {b} {top} {b} {a} {b}")
    return " | ".join(bars)


# Piano trio, F major, 6/8 over a drone: A (1–8), B (9–14, D minor: the cello sings, then the
# violin, rising to ff on C7), A′ (15–20, pp, rit., fermata).
TRIO = Piece(
    slug="trio-pastorale", title="Pastorale for Piano Trio", ensemble="trio",
    key_fifths=-1, time="6/8",
    players=(
        Player("Violin", instrument.Violin, (Staff(
            "T=Allegretto_pastorale=90 !p A4q( C5e F5q E5e) | D5q( F5e B-4q D5e) | C5q.( A4q) C5e |"
            " B-4q( G4e E4q G4e) | < A4q( C5e F5q A5e) | B-5q.( F5q D5e) = |"
            " !mf > C5q( E5e G5q B-4e) = | !p A4q. rq. |"
            " D5h. | C#5h. | !mf < F5q( A5e D6q C6e) | B-5q.( G5q D5e) = |"
            " !f < E5q( G5e C6q B-5e) = | !ff C6q.> B-5q>( G5e) |"
            " !pp A4q( C5e F5q E5e) | D5q( F5e B-4q D5e) | C5q.( A4q) C5e |"
            " @rit. B-4q( G4e E4q G4e) | A4q.( C5q.) | F5h.^"),), "Vln."),
        Player("Violoncello", instrument.Violoncello, (Staff(
            "!p F3q.( A3q.) | B-3q.( F3q.) | A3q.( F3q.) | G3q.( B-3q.) | < F3q.( C4q.) |"
            " D4q.( B-3q.) = | !mf > G3q.( E3q.) = | !p F3q. rq. |"
            " !mf D3q( F3e A3q G3e) | E3q.( C#3q A2e) | < F3q.( A3q.) | G3q.( B-3q.) = |"
            " !f < C3q.( E3q.) = | !ff C3q.> G2q.> |"
            " !pp F3q.( A3q.) | B-3q.( F3q.) | A3q.( F3q.) | G3q.( B-3q.) | F3q.( C3q.) | F2h.^",
            "bass"),), "Vc."),
        Player("Piano", instrument.Piano, (
            Staff("!pp " + _rocking(["A3+C4+F4", "D4+F4+B-4", "C4+F4+A4", "B-3+C4+E4",
                                     "A3+C4+F4", "B-3+D4+F4", "G3+B-3+E4", "A3+C4+F4q. rq.",
                                     "!pp D4+F4+A4h.", "C#4+E4+G4h.", "!p < A3e D4 F4 D4 A3 D4",
                                     "G3e B-3 D4 B-3 G3 B-3 =", "!mf < G3e B-3 E4 B-3 G3 B-3 =",
                                     "!f G3+B-3+C4+E4q.> G3+B-3+C4+E4q.>",
                                     "!pp A3e C4 F4 C4 A3 C4", "D4+F4+B-4", "C4+F4+A4",
                                     "B-3+C4+E4", "A3+C4+F4", "F3+A3+C4h.^"])),
            Staff("F2+C3h. | F2h. | F2+C3h. | C2+G2h. | F2+C3h. | B-1+F2h. | C2+G2h. |"
                  " F2+C3q. rq. | D2h. | A1h. | D2+A2h. | G2+D3h. | C2+G2h. | C2+C3q.> C2+C3q.> |"
                  " F2+C3h. | F2h. | F2+C3h. | C2+G2h. | F2+C3h. | F1+F2h.^", "bass"),
        ), "Pno."),
    ))


# Wind quintet, F major, at concert pitch here (the clarinet in B♭ and the horn in F are written
# transposed in the file): A (1–8, flute and oboe in thirds over a staccato bassoon), B (9–12:
# the clarinet sings in D minor while flute and oboe breathe, then all rise to ff on C7), A′
# (13–16, pp, rit., fermata).
QUINTET = Piece(
    slug="quintet-divertimento", title="Divertimento for Wind Quintet", ensemble="quintet",
    key_fifths=-1, time="4/4",
    players=(
        Player("Flute", instrument.Flute, (Staff(
            "T=Allegretto=100 !p C6e'( A5' F5' A5') C6q( A5q) | B-5e'( G5' E5' G5') B-5q( G5q) |"
            " < A5q.( B-5e C6q) F6q' = | !mf E6q( D6e C6e) C6q rq |"
            " !p C6e'( A5' F5' A5') C6q( A5q) | < D6q( B-5q) B5q( D6q) = |"
            " !mf C6q( B-5e A5e) G5q( B-5q) | A5q' C6q' F5q, rq |"
            " R | R | !f < G5q( B-5q C6q E6q) = | !ff G6q> E6q> C6q> B-5q> |"
            " !pp C6e'( A5' F5' A5') C6q( A5q) | B-5e'( G5' E5' G5') B-5q( G5q) |"
            " @rit. F5q( D6q C6q B-5q) | A5w^"),), "Fl."),
        Player("Oboe", instrument.Oboe, (Staff(
            "!p A5e'( F5' C5' F5') A5q( F5q) | G5e'( E5' C5' E5') G5q( E5q) |"
            " < F5q.( G5e A5q) A5q' = | !mf G5q( F5e E5e) E5q rq |"
            " !p A5e'( F5' C5' F5') A5q( F5q) | < B-5q( F5q) G5q( F5q) = |"
            " !mf E5q( G5e F5e) E5q( G5q) | F5q' A5q' C5q, rq |"
            " R | R | !f < E5q( G5q G5q B-5q) = | !ff C6q> G5q> E5q> E5q> |"
            " !pp A5e'( F5' C5' F5') A5q( F5q) | G5e'( E5' C5' E5') G5q( E5q) |"
            " D5q( F5q E5q G5q) | F5w^"),), "Ob."),
        Player("Clarinet in B♭", instrument.Clarinet, (Staff(
            "!p F4w | B-4w | < A4w = | !mf E4h E4q rq | !p F4w | < F4h( D4h) = | !mf E4h( G4h) |"
            " A4q' F4q' F4q rq |"
            " !mf D5q.( E5e F5q A5q) | G5q( F5e E5e D5q B-4q) | !f < C5q( E5q E5q G5q) = |"
            " !ff E5q> G5q> G4q> B-4q> |"
            " !pp A4h( F4h) | E4w | F4h( B-4h) | C5w^"),), "Cl."),
        Player("Horn in F", instrument.Horn, (Staff(
            "!p C4w | C4w | < C4w = | !mf C4h C4q rq | !p C4w | < D4h( G4h) = | !mf E4h( C4h) |"
            " A3q' A3q' F3q rq |"
            " !p A3h( F3h) | B-3h( G3h) | !f < C4h( E4h) = | !ff C4h> E4h> |"
            " !pp C4w | C4w | D4h( E4h) | C4w^"),), "Hn."),
        Player("Bassoon", instrument.Bassoon, (Staff(
            "!p F2q' C3' F2' C3' | C3q' G2' C3' G2' | < F2q' A2' C3' A2' = | !mf C3q' G2' C2 rq |"
            " !p F2q' C3' F2' C3' | < B-2q' D3' G2' B2' = | !mf C3q' E3' G2' C3' | F2q' F2' F2 rq |"
            " !p D3q' A2' D3' F2' | G2q' D3' G2' D3' | !f < C3q' B-2' G2' C3' = |"
            " !ff C3q> C2> C3> C2> |"
            " !pp F2q' C3' F2' C3' | C3q' G2' C3' G2' | B-2h C3h | F2w^", "bass"),), "Bsn."),
    ))


# String sextet, G minor, a sarabande (the second beat leans): A (1–4) with 9–8 suspensions in
# the second viola, B (5–8) through E♭ and C minor and A7 to the dominant, ff, A′ (9–12) pp,
# rit., ending on G major (tierce de Picardie) under a fermata.
SEXTET = Piece(
    slug="sextet-sarabande", title="Sarabande for String Sextet", ensemble="sextet",
    key_fifths=-2, time="3/4",
    players=(
        Player("Violin I", instrument.Violin, (Staff(
            "T=Lento=56 !p D5q( G5h) | G5q.( A-5e G5q) | F#5q( A5h) | B-5q.( A5e G5q) |"
            " < G5q( B-5h) | C6q.( B-5e A-5q) = | !f < G5q( C#6h) = | !ff D6q> A5q> F#5q> |"
            " !pp D5q( G5h) | G5q.( A-5e G5q) | @rit. F#5q( A5q C6q) | B5h.^"),), "Vln. I"),
        Player("Violin II", instrument.Violin, (Staff(
            "!p B-4h. | C5h. | C5h. | D5h( B-4q) | < E-5h. | E-5h. = | !f < E5h. = |"
            " !ff F#5q> D5q> A4q> | !pp B-4h. | C5h. | C5h. | D5h.^"),), "Vln. II"),
        Player("Viola I", instrument.Viola, (Staff(
            "!p G4h. | G4h. | A4h. | G4h. | < G4h. | G4h. = | !f < G4h. = | !ff F#4q> A4q> A4q> |"
            " !pp G4h. | G4h. | A4h. | G4h.^", "alto"),), "Vla. I"),
        Player("Viola II", instrument.Viola, (Staff(
            "!p D4h. | C4h. | A3h. | A3q( G3h) | < B-3h. | E-4h. = | !f < D4q( C#4q D4q) = |"
            " !ff D4q> F#4q> D4q> | !pp D4h. | C4h. | A3h. | A3q( G3h^)", "alto"),), "Vla. II"),
        Player("Violoncello I", instrument.Violoncello, (Staff(
            "!p B-3h. | E-3h. | D3h. | D3q G3h | < G3h. | C3h. = | !f < E3h. = | !ff D3q> D3q> D3q> |"
            " !pp B-3h. | E-3h. | D3h. | D3q G3h^", "bass"),), "Vc. I"),
        Player("Violoncello II", instrument.Violoncello, (Staff(
            "!p G2h. | G2h. | D2h. | G2h. | < E-2h. | C2h. = | !f < A2h. = | !ff D2q> D2q> D2q> |"
            " !pp G2h. | G2h. | D2h. | G2h.^", "bass"),), "Vc. II"),
    ))


# SATB hymn, F major, words by the project: three couplets (the middle one pp in D minor, the
# last rising to ff), then a plagal Amen, pp, under a fermata. Breath marks end the phrases.
_HYMN_WORDS = ("Qui- et falls the eve- ning light, gold up- on the hill; sha- dows ga- ther in- to"
               " night, all the world is still. Sing, my heart, and fear no dark: morn- ing comes"
               " a- gain. A- men.")
CHOIR = Piece(
    slug="choir-evening-hymn", title="Evening Hymn", ensemble="choir",
    key_fifths=-1, time="4/4",
    players=(
        Player("Soprano", instrument.Soprano, (Staff(
            "T=Andante=72 !p C5q A4 B-4 C5 | D5q C5 C5h, | C5h D5q E5q | F5h C5h, |"
            " !pp A4q F4 G4 F4 | E4q F4 E4h, | !mp < F4h G4q A4q = | G4h F4h, |"
            " !f < C5q C5 D5 E5 = | !ff F5q> E5> D5h>, | !mf > D5h C5q B-4q | @rit. G4h F4h, = |"
            " !pp F4w | F4w^", lyrics=_HYMN_WORDS),), "S."),
        Player("Alto", instrument.Alto, (Staff(
            "!p F4q F4 F4 E4 | F4q F4 E4h, | F4h F4q G4q | A4h A4h, |"
            " !pp F4q D4 E4 D4 | C#4q D4 C#4h, | !mp < D4h E4q F4q = | E4h C4h, |"
            " !f < A4q A4 B-4 C5 = | !ff C5q> C5> A4h>, | !mf > B-4h A4q G4q | E4h C4h, = |"
            " !pp D4w | C4w^", lyrics=_HYMN_WORDS),), "A."),
        Player("Tenor", instrument.Tenor, (Staff(
            "!p A3q C4 D4 G3 | B-3q A3 G3h, | A3h B-3q G3q | F3h C4h, |"
            " !pp D4q C4 C4 A3 | A3q A3 A3h, | !mp < A3h C4q C4q = | B-3h A3h, |"
            " !f < F4q F4 F4 G4 = | !ff F4q> G4> F4h>, | !mf > F4h F4q D4q | B-3h A3h, = |"
            " !pp B-3w | A3w^", "tenor", lyrics=_HYMN_WORDS),), "T."),
        Player("Bass", instrument.Bass, (Staff(
            "!p F3q F3 D3 C3 | B-2q F2 C3h, | F3h D3q C3q | F3h F3h, |"
            " !pp F3q F3 C3 D3 | A2q D3 A2h, | !mp < D3h C3q F3q = | C3h F2h, |"
            " !f < F3q F3 D3 C3 = | !ff A2q> C3> D3h>, | !mf > B-2h F3q G3q | C3h F2h, = |"
            " !pp B-2w | F2w^", "bass", lyrics=_HYMN_WORDS),), "B."),
    ))

PIECES: list[Piece] = [NOCTURNE, DUET, TRIO, QUARTET, QUINTET, SEXTET, CHOIR]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list parallel fifths and octaves")
    parser.add_argument("--only", help="write only the piece with this slug")
    args = parser.parse_args(argv)
    for piece in PIECES:
        if args.only and piece.slug != args.only:
            continue
        path = write(piece)
        print(f"{path.relative_to(SCORES.parent)}")
        if args.check:
            for line in parallels(build(piece)):
                print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
