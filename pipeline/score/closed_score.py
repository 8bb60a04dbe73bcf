"""A choir written in closed score is sung by as many sections as its staves hold voices.

Hymns and chorales are often written on two staves, soprano and alto on the upper one, tenor and
bass on the lower, each staff holding two voices (MusicXML ``<voice>`` 1 and 2). Sung as one
part, each staff would be one section with one seat and one rehearsal track. Here each voice of
a sung staff becomes its own part:

- a voice keeps the staff's dynamics, words and directions (everything of a bar that is not in
  another voice) and its own notes;
- where the voices share a stem (a chord of as many notes as the staff has voices, outside any
  voice or in the first), the top note is the first voice's, the next the second's, and so on;
  a unison written once (a single note) is sung by all of them;
- the parts are named from the staff's name where it names each voice ("Soprano Alto",
  "S. A.", "Tenor/Bass"), else "<staff>, voice <n>".

Instrumental staves, sung staves with one voice, and a solo line with a few bars of divisi or an
ossia (fewer than half its bars show several singers) are left as they are.
"""
from __future__ import annotations

import copy
import re

from pipeline.settings import instruments

#: a staff named by initials: "S. A.", "T B"
INITIALS = {"s": "Soprano", "a": "Alto", "t": "Tenor", "b": "Bass"}


def split_sung_voices(groups: list[tuple[str, list]]) -> tuple[list[tuple[str, list]], dict]:
    """``groups`` (``(name, staves)`` per instrument) with each voice of a sung staff its own
    group; and, for each new staff's id, the staff it was taken from (whose id the marks read
    from the file are kept under)."""
    out: list[tuple[str, list]] = []
    source: dict[int, object] = {}
    for name, staves in groups:
        voices = _voice_ids(staves[0]) if len(staves) == 1 and _sung(name, staves[0]) else []
        if len(voices) < 2 or not _written_for_several(staves[0], len(voices)):
            out.append((name, staves))
            continue
        for k, (voice, part_name) in enumerate(zip(voices, _names(name, len(voices)))):
            staff = _one_voice(staves[0], voice, k, len(voices))
            staff.partName = part_name
            source[id(staff)] = staves[0]
            out.append((part_name, [staff]))
    return out, source


def _sung(name: str, staff) -> bool:
    """Whether a staff is sung: by its name (or its instrument's), else its MIDI program."""
    if instruments.voice_for(name) is not None:
        return True
    inst = staff.getInstrument(returnDefault=False)
    info = instruments.lookup_first(name, inst.instrumentName if inst else None)
    if info is not None:
        return info.family == "voices"
    program = inst.midiProgram if inst is not None else None
    return program is not None and instruments.family_of_program(program) == "voices"


def _voice_ids(staff) -> list[str]:
    """The ids of the voices that hold notes, in order."""
    found: dict[str, None] = {}
    for measure in staff.getElementsByClass("Measure"):
        for voice in measure.voices:
            if voice.notes:
                found.setdefault(str(voice.id), None)
    return sorted(found, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))


def _written_for_several(staff, count: int) -> bool:
    """Whether most of the staff's bars with notes show ``count`` singers (as many voices, or
    chords of as many notes): not a solo line with a bar of divisi or an ossia."""
    from music21 import chord

    bars = several = 0
    for measure in staff.getElementsByClass("Measure"):
        notes = measure.recurse().notes
        if not notes:
            continue
        bars += 1
        sounding = sum(1 for v in measure.voices if v.notes)
        several += sounding >= count or any(
            isinstance(n, chord.Chord) and len(n.pitches) == count for n in notes)
    return several * 2 > bars


def _names(name: str, count: int) -> list[str]:
    words = [w for w in re.split(r"[\s/&,.+]+|\band\b|\bund\b", name) if w]
    if len(words) == count:
        return [INITIALS.get(w.lower(), w) if len(w) == 1 else w for w in words]
    return [f"{name}, voice {k + 1}" for k in range(count)]


def _one_voice(staff, voice: str, k: int, count: int):
    """A copy of ``staff`` with voice ``voice`` (the ``k``-th of ``count``) alone: in a bar
    where it is silent, the notes of the voices sharing a stem (the first voice there, or the
    bar's own notes) give it its note."""
    from music21 import chord

    mine = copy.deepcopy(staff)
    for measure in mine.getElementsByClass("Measure"):
        voices = [v for v in measure.voices if v.notes]
        own = [v for v in voices if str(v.id) == voice]
        keep = own[0] if own else (voices[0] if voices else None)
        for v in list(measure.voices):
            if v is not keep:
                # its dynamics and directions are the staff's: they stay in the bar
                for mark in list(v.getElementsNotOfClass("GeneralNote")):
                    measure.insert(v.offset + mark.offset, mark)
                measure.remove(v)
        if own:
            continue
        holder = keep if keep is not None else measure
        for c in list(holder.getElementsByClass(chord.Chord)):
            if len(c.pitches) == count:  # the voices share a stem: the k-th note from the top
                _keep_note(c, sorted(c.pitches, key=lambda p: -p.ps)[k])
    return mine


def _keep_note(c, pitch) -> None:
    """Chord ``c`` down to the one note of ``pitch`` (its duration, ties, articulations and
    marks kept)."""
    for other in [p for p in c.pitches if p is not pitch]:
        c.remove(other)
