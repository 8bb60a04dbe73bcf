"""A 30-part orchestral score for the benchmark, generated from a fixed seed.

    python benchmarks/orchestra_score.py MINUTES OUT.musicxml [--seed N]

Full symphony orchestra (triple woodwinds, four horns, three trumpets, three trombones, tuba,
timpani, percussion, harp, five string sections), dense writing — strings in quavers and
semiquavers, woodwinds in crotchets doubling the tune, brass chords and hits in the loud
phrases — over a diatonic chord plan in C, 4/4 at crotchet 120 (two seconds a bar). A new
dynamic every two to four bars (a random walk between pp and ff), with hairpins into some of
them. Transposing instruments are written at written pitch with their ``<transpose>``, the
percussion with ``<unpitched>`` notes, as notation programs export them.

The MusicXML is written as text (no music21): the same seed and length give the same bytes.
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

TEMPO_BPM = 120
BAR_QL = 4
DIVISIONS = 4  # per crotchet: semiquavers are the shortest notes
DYNAMICS = ("pp", "p", "mp", "mf", "f", "ff")
#: I vi IV ii V I IV V … in C, as chord tones (pitch classes, root first)
PLAN = ((0, 4, 7), (9, 0, 4), (5, 9, 0), (2, 5, 9), (7, 11, 2, 5), (0, 4, 7), (5, 9, 0),
        (7, 11, 2), (4, 7, 11), (9, 0, 4), (2, 5, 9), (7, 11, 2, 5))
SCALE = (0, 2, 4, 5, 7, 9, 11)
SHARP_NAMES = ("C", 0), ("C", 1), ("D", 0), ("D", 1), ("E", 0), ("F", 0), ("F", 1), ("G", 0), \
    ("G", 1), ("A", 0), ("A", 1), ("B", 0)
TYPES = {16: "whole", 12: "half", 8: "half", 6: "quarter", 4: "quarter", 3: "eighth",
         2: "eighth", 1: "16th"}
DOTTED = {12, 6, 3}


@dataclass(frozen=True)
class PartSpec:
    name: str
    program: int            # General MIDI, 1-based as MusicXML writes it
    role: str               # tune, inner, bass, brass, timpani, percussion, harp, strings
    low: int                # sounding range, MIDI
    high: int
    clef: tuple[str, int] = ("G", 2)
    transpose: tuple[int, int, int] = (0, 0, 0)  # diatonic, chromatic, octave-change
    key_fifths: int = 0     # written key signature

    @property
    def written_offset(self) -> int:
        """Semitones from sounding to written pitch."""
        d, c, o = self.transpose
        return -(c + 12 * o)


BASS, ALTO = ("F", 4), ("C", 3)
BB = (-1, -2, 0)
PARTS = (
    PartSpec("Piccolo", 73, "tune", 74, 105, transpose=(0, 0, 1)),
    PartSpec("Flute 1", 74, "tune", 62, 96),
    PartSpec("Flute 2", 74, "inner", 62, 91),
    PartSpec("Oboe 1", 69, "tune", 60, 89),
    PartSpec("Oboe 2", 69, "inner", 58, 86),
    PartSpec("English Horn", 70, "inner", 52, 79, transpose=(-4, -7, 0), key_fifths=1),
    PartSpec("Clarinet in B♭ 1", 72, "tune", 52, 91, transpose=BB, key_fifths=2),
    PartSpec("Clarinet in B♭ 2", 72, "inner", 50, 86, transpose=BB, key_fifths=2),
    PartSpec("Bass Clarinet in B♭", 72, "bass", 38, 70, transpose=(-8, -14, 0), key_fifths=2),
    PartSpec("Bassoon 1", 71, "inner", 41, 72, clef=BASS),
    PartSpec("Bassoon 2", 71, "bass", 34, 65, clef=BASS),
    *(PartSpec(f"Horn in F {i}", 61, "brass", 41 if i % 2 else 36, 77 if i % 2 else 72,
               transpose=(-4, -7, 0), key_fifths=1) for i in range(1, 5)),
    *(PartSpec(f"Trumpet in B♭ {i}", 57, "brass", 55, 82 - 2 * i, transpose=BB, key_fifths=2)
      for i in range(1, 4)),
    PartSpec("Trombone 1", 58, "brass", 45, 72, clef=BASS),
    PartSpec("Trombone 2", 58, "brass", 40, 67, clef=BASS),
    PartSpec("Bass Trombone", 58, "bass", 31, 62, clef=BASS),
    PartSpec("Tuba", 59, "bass", 28, 58, clef=BASS),
    PartSpec("Timpani", 48, "timpani", 41, 55, clef=BASS),
    PartSpec("Percussion", 49, "percussion", 0, 0, clef=("percussion", 2)),
    PartSpec("Harp", 47, "harp", 36, 91),
    PartSpec("Violin I", 41, "tune", 67, 98),
    PartSpec("Violin II", 41, "strings", 55, 88),
    PartSpec("Viola", 42, "strings", 48, 79, clef=ALTO),
    PartSpec("Violoncello", 43, "bass", 36, 69, clef=BASS),
    PartSpec("Contrabass", 44, "bass", 28, 55, clef=BASS, transpose=(0, 0, -1)),
)
#: the percussion part's instruments: (id suffix, name, GM drum note 1-based, display step/octave)
KIT = (("I37", "Bass Drum", 37, ("F", 4)), ("I50", "Crash Cymbal", 50, ("A", 5)),
       ("I39", "Snare Drum", 39, ("C", 5)))


@dataclass
class Phrase:
    bars: int
    dynamic: str
    hairpin: str | None   # 'crescendo' / 'diminuendo' over the phrase, into the next dynamic


def phrases(bars: int, rng: random.Random) -> list[Phrase]:
    """A dynamic every two to four bars: a random walk between pp and ff."""
    out, level, left = [], 3, bars
    while left > 0:
        n = min(left, rng.choice((2, 3, 4)))
        out.append(Phrase(n, DYNAMICS[level], None))
        level = max(0, min(len(DYNAMICS) - 1, level + rng.choice((-2, -1, 1, 1, 2))))
        left -= n
    for here, following in zip(out, out[1:]):
        a, b = DYNAMICS.index(here.dynamic), DYNAMICS.index(following.dynamic)
        if abs(a - b) >= 2 and rng.random() < 0.6:
            here.hairpin = "crescendo" if b > a else "diminuendo"
    return out


def nearest(pc: int, target: float, low: int, high: int) -> int:
    """The MIDI note of pitch class ``pc`` inside [low, high] closest to ``target``."""
    options = [m for m in range(low, high + 1) if m % 12 == pc]
    return min(options, key=lambda m: abs(m - target)) if options else max(low, min(high, round(target)))


def tune_bar(chord: tuple[int, ...], prev: int, rng: random.Random) -> list[tuple[int, int]]:
    """One bar of the tune at concert pitch, (MIDI, duration in divisions); around C5."""
    rhythm = rng.choice(((4, 4, 4, 4), (2, 2, 4, 2, 2, 4), (6, 2, 4, 4), (4, 2, 2, 8),
                         (2, 2, 2, 2, 4, 4), (8, 4, 4), (3, 1, 4, 4, 4)))
    notes, here = [], prev
    for i, d in enumerate(rhythm):
        if i == 0 or d >= 4:
            here = nearest(rng.choice(chord), here + rng.choice((-3, 0, 3)), 67, 84)
        else:  # short notes move by step through the scale
            steps = [p for p in range(here - 2, here + 3) if p % 12 in SCALE and p != here]
            here = max(67, min(84, rng.choice(steps)))
        notes.append((here, d))
    return notes


def fit(midi: int, spec: PartSpec) -> int:
    while midi < spec.low:
        midi += 12
    while midi > spec.high:
        midi -= 12
    return midi


def part_bar(spec: PartSpec, index: int, chord, tune, phrase: Phrase, rng: random.Random):
    """One bar for ``spec``: a list of (MIDI pitches, divisions, articulation) at concert pitch
    (no pitches: a rest; a percussion 'pitch' is the kit index)."""
    loud = DYNAMICS.index(phrase.dynamic) >= 3
    root, centre = chord[0], (spec.low + spec.high) / 2
    role = spec.role
    if role == "tune":
        return [((fit(m, spec),), d, "") for m, d in tune]
    if role == "inner":
        tone = chord[(index % (len(chord) - 1)) + 1]
        pattern = (8, 8) if index % 2 else (4, 4, 4, 4)
        return [((nearest(tone if i % 2 == 0 else chord[0], centre, spec.low, spec.high),), d, "")
                for i, d in enumerate(pattern)]
    if role == "bass":
        low = nearest(root, spec.low + 7, spec.low, spec.high)
        if spec.name in ("Violoncello", "Contrabass"):
            return [((low if i % 2 == 0 else fit(low + 7, spec),), 2, "staccato" if loud else "")
                    for i in range(8)]
        return [((low,), 8, ""), ((fit(low + (7 if len(chord) < 4 else 5), spec),), 8, "")]
    if role == "brass":
        if not loud:
            return [((), 16, "")]
        tone = nearest(chord[index % len(chord)], centre, spec.low, spec.high)
        if spec.name.startswith("Trumpet"):
            return [((tone,), 4, "accent"), ((tone,), 2, "staccato"), ((tone,), 2, "staccato"),
                    ((tone,), 8, "")]
        return [((tone,), 12, "accent"), ((tone,), 4, "")]
    if role == "timpani":
        pitch = nearest(root if root in (0, 7) else 7, 48, spec.low, spec.high)
        if not loud:
            return [((pitch,), 16, "")]
        return [((pitch,), 4, "accent"), ((pitch,), 2, ""), ((pitch,), 2, ""), ((pitch,), 8, "")]
    if role == "percussion":
        if not loud:
            return [((), 16, "")]
        first = (1,) if index % 4 == 0 else (0,)
        return [(first, 4, ""), ((0,), 4, ""), ((2,), 4, ""), ((0, 2), 4, "")]
    if role == "harp":
        arp = [nearest(chord[i % len(chord)], 55 + 4 * i, spec.low, spec.high) for i in range(8)]
        return [((m,), 2, "") for m in arp]
    # strings: semiquaver figures in loud phrases, quavers otherwise
    tones = [nearest(chord[i % len(chord)], centre - 3 + 2 * (i % 3), spec.low, spec.high)
             for i in range(4)]
    if loud:
        return [((tones[i % 4],), 1, "") for i in range(16)]
    return [((tones[i % 4],), 2, "") for i in range(8)]


def _pitch_xml(midi: int) -> str:
    step, alter = SHARP_NAMES[midi % 12]
    alter_xml = f"<alter>{alter}</alter>" if alter else ""
    return f"<pitch><step>{step}</step>{alter_xml}<octave>{midi // 12 - 1}</octave></pitch>"


def _note_xml(spec: PartSpec, pid: str, pitches: tuple[int, ...], dur: int, art: str) -> str:
    kind = TYPES[dur]
    dot = "<dot/>" if dur in DOTTED else ""
    notations = f"<notations><articulations><{art}/></articulations></notations>" if art else ""
    if not pitches:
        rest = '<rest measure="yes"/>' if dur == 16 else "<rest/>"
        return f"<note>{rest}<duration>{dur}</duration><voice>1</voice><type>{kind}</type>{dot}</note>"
    out = []
    for i, p in enumerate(pitches):
        chord = "<chord/>" if i else ""
        if spec.role == "percussion":
            ident, _, _, (step, octave) = KIT[p]
            head = (f"<unpitched><display-step>{step}</display-step>"
                    f"<display-octave>{octave}</display-octave></unpitched>")
            inst = f'<instrument id="{pid}-{ident}"/>'
        else:
            head, inst = _pitch_xml(p + spec.written_offset), ""
        out.append(f"<note>{chord}{head}<duration>{dur}</duration>{inst}<voice>1</voice>"
                   f"<type>{kind}</type>{dot}{notations if i == 0 else ''}</note>")
    return "".join(out)


def _direction(inner: str, placement: str = "below") -> str:
    return f'<direction placement="{placement}"><direction-type>{inner}</direction-type></direction>'


def _attributes(spec: PartSpec) -> str:
    sign, line = spec.clef
    d, c, o = spec.transpose
    transpose = (f"<transpose><diatonic>{d}</diatonic><chromatic>{c}</chromatic>"
                 + (f"<octave-change>{o}</octave-change>" if o else "") + "</transpose>"
                 if spec.transpose != (0, 0, 0) else "")
    return (f"<attributes><divisions>{DIVISIONS}</divisions><key><fifths>{spec.key_fifths}</fifths>"
            f"</key><time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>{sign}</sign>"
            f"<line>{line}</line></clef>{transpose}</attributes>")


def _score_part(spec: PartSpec, pid: str) -> str:
    head = f'<score-part id="{pid}"><part-name>{spec.name}</part-name>'
    if spec.role == "percussion":
        insts = "".join(f'<score-instrument id="{pid}-{i}"><instrument-name>{n}</instrument-name>'
                        f"</score-instrument>" for i, n, _, _ in KIT)
        midis = "".join(f'<midi-instrument id="{pid}-{i}"><midi-channel>10</midi-channel>'
                        f"<midi-unpitched>{m}</midi-unpitched></midi-instrument>" for i, _, m, _ in KIT)
        return head + insts + midis + "</score-part>"
    channel = PARTS.index(spec) % 15 + 1
    channel += channel >= 10  # channel 10 is the drums'
    return (head + f'<score-instrument id="{pid}-I1"><instrument-name>{spec.name}</instrument-name>'
            f'</score-instrument><midi-instrument id="{pid}-I1"><midi-channel>{channel}'
            f"</midi-channel><midi-program>{spec.program}</midi-program></midi-instrument>"
            "</score-part>")


def orchestra_score(minutes: float, *, seed: int = 133) -> str:
    """The MusicXML text of a ``minutes``-long orchestral piece (whole bars at crotchet 120)."""
    rng = random.Random(seed)
    bars = max(1, round(minutes * 60 * TEMPO_BPM / 60 / BAR_QL))
    plan = phrases(bars, rng)
    chords, tunes, prev = [], [], 72
    for b in range(bars):
        chord = PLAN[(b // 2 + rng.choice((0, 0, 0, 1))) % len(PLAN)]
        chords.append(chord)
        tunes.append(tune_bar(chord, prev, rng))
        prev = tunes[-1][-1][0]
    phrase_of, starts = [], set()
    for p in plan:
        starts.add(len(phrase_of))
        phrase_of.extend([p] * p.bars)
    parts_xml, list_xml = [], []
    for n, spec in enumerate(PARTS, 1):
        pid = f"P{n}"
        list_xml.append(_score_part(spec, pid))
        part_rng = random.Random(seed * 1000 + n)
        measures = []
        for b in range(bars):
            phrase = phrase_of[b]
            body = [_attributes(spec)] if b == 0 else []
            if b == 0 and n == 1:
                body.append(_direction(f"<metronome><beat-unit>quarter</beat-unit><per-minute>"
                                       f"{TEMPO_BPM}</per-minute></metronome>", "above")
                            + f'<sound tempo="{TEMPO_BPM}"/>')
            if b in starts:
                body.append(_direction(f"<dynamics><{phrase.dynamic}/></dynamics>"))
                if phrase.hairpin:
                    body.append(_direction(f'<wedge type="{phrase.hairpin}"/>'))
            events = part_bar(spec, b, chords[b], tunes[b], phrase, part_rng)
            assert sum(d for _, d, _ in events) == BAR_QL * DIVISIONS, (spec.name, events)
            body.extend(_note_xml(spec, pid, p, d, a) for p, d, a in events)
            if phrase.hairpin and b + 1 in starts:
                body.append(_direction('<wedge type="stop"/>'))
            if b == bars - 1:
                body.append('<barline location="right"><bar-style>light-heavy</bar-style></barline>')
            measures.append(f'<measure number="{b + 1}">{"".join(body)}</measure>')
        parts_xml.append(f'<part id="{pid}">' + "\n".join(measures) + "</part>")
    title = f"Benchmark Symphony ({minutes:g} minutes, seed {seed})"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 4.0 Partwise//EN" '
            '"http://www.musicxml.org/dtds/partwise.dtd">\n'
            '<score-partwise version="4.0">'
            f"<work><work-title>{title}</work-title></work>"
            '<identification><creator type="composer">score2audio benchmark</creator></identification>'
            "<part-list>" + "".join(list_xml) + "</part-list>\n" + "\n".join(parts_xml)
            + "</score-partwise>\n")


def write_orchestra_score(path: Path, minutes: float, *, seed: int = 133) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = orchestra_score(minutes, seed=seed)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("minutes", type=float)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=133)
    args = ap.parse_args()
    write_orchestra_score(args.out, args.minutes, seed=args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
