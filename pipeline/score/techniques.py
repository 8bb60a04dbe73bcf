"""Playing techniques that change a player's sound: pizz./arco, mutes, and instrument changes.

Players read technique changes as words over the staff ("pizz.", "arco", "con sord.",
"senza sord.", "mute", "open", "nat."…, any case, with or without dots) and, for a single note,
as a ``<technical>`` mark (a snap pizzicato). A General MIDI soundfont has a few such sounds as
programs of their own, so a change becomes a program change on the track:

- bowed strings (GM 40–44, 48–49): pizz. → GM 45 Pizzicato Strings, arco → the part's own voice;
- a jazz double bass (GM 32 Acoustic Bass, already plucked): arco → GM 43 Contrabass;
- trumpet, cornet, flugelhorn (GM 56): con sord./mute → GM 59 Muted Trumpet, senza sord./open →
  the part's own voice.

Horn, trombone, tuba and strings have no muted program in General MIDI, so con sord. keeps their
voice: a muted horn played open is closer to the music than a muted trumpet in the horn's
register. Nor is there a portable way to darken them: FluidSynth and the SoundFont 2 default
modulators give CC74 (brightness) no meaning (FluidSynth issue #1238), and CC11 already carries
the dynamics.

"The part's own voice" is :data:`~pipeline.model.OWN_PROGRAM`, not a program number: it is
whatever voice the assign stage chose for the track (the score's program, the instrument map's,
or a sidecar's), so returning to it never undoes that choice.

The state at each played position is the one the score shows there: the changes are worked out
along the written music and then laid on the play order (:class:`pipeline.score.form.Timeline`), so a
repeat plays its pizzicato again and a D.C. back to an arco opening switches back to arco even
when the music before the jump ended pizzicato.
"""
from __future__ import annotations

import bisect
import math
import re

from pipeline.score import form

from pipeline.settings import instruments
from pipeline.model import OWN_PROGRAM, TICKS_PER_QUARTER, Control

PIZZICATO_STRINGS = 45
CONTRABASS = 43
MUTED_TRUMPET = 59
BOWED_STRINGS = frozenset({40, 41, 42, 43, 44, 48, 49})
PLUCKED_DOUBLE_BASS = frozenset({32})
TRUMPETS = frozenset({56})

#: Words for each switch, matched on the lower-cased text; where "open" is found, "mute" is
#: not ("senza sord.", "mute off").
SWITCH_WORDS = (
    ("pizz", re.compile(r"\bpizz(?:icato)?\b")),
    ("arco", re.compile(r"\barco\b")),
    ("open", re.compile(r"\b(?:senza|via) sord|\bohne d[äa]mpfer|\bsans sourdine|"
                        r"\b[ôo]tez (?:les )?sourdines?|\bopen\b|\bmutes? off\b|"
                        r"\b(?:remove|without|no) mutes?\b|\bunmuted\b")),
    ("mute", re.compile(r"\bcon sord|\bmit d[äa]mpfer|\bavec sourdine|\bmute[sd]?\b")),
    ("normal", re.compile(r"\bnat(?:urale)?\b|\bord(?:inario)?\b|\bmodo ordinario\b|"
                          r"\bnorm(?:ale?)?\b")),
)


def switches(text: str) -> list[str]:
    """The technique switches a word mark asks for, among ``pizz``, ``arco``, ``mute``,
    ``open`` and ``normal`` (back to the ordinary sound: unmuted, bowed)."""
    words = re.sub(r"\s+", " ", text.lower())
    found = [name for name, pattern in SWITCH_WORDS if pattern.search(words)]
    return [s for s in found if s != "mute"] if "open" in found else found


def program_changes(staves, *, name: str, inst, program: int | None,
                    tl: form.Timeline) -> list[Control]:
    """Program changes, in played ticks, for one instrument's technique words, snap pizzicato
    notes and later instrument changes (e.g. Cl. → B.Cl.). ``program`` is the score's program
    for the part (None when it does not say: the instrument map's is then used to tell what
    the player holds). Not for percussion: a drum channel's program chooses the kit."""
    own = program
    if own is None:
        info = instruments.lookup_first(name, inst.instrumentName if inst is not None else None)
        own = info.program if info is not None else None
    offsets, programs = _written_changes(staves, own)
    if not offsets:
        return []
    return [Control(round(tick * TICKS_PER_QUARTER), "program_change", prog, 0)
            for tick, prog in _played(offsets, programs, tl)]


def _written_changes(staves, own: int | None) -> tuple[list[float], list[int]]:
    """Where (written quarter notes) the program changes along the part, and to what;
    ``own``: the program the player starts on (an instrument change back to it returns to
    the track's own voice)."""
    from music21 import expressions, instrument

    # (offset, order, what, value): at one offset a snap pizzicato note ends before anything
    # else there happens
    events: list[tuple[float, int, str, object]] = []
    for inst in staves[0].flatten().getElementsByClass(instrument.Instrument):
        if inst.offset > 0 and inst.midiProgram is not None:
            events.append((float(inst.offset), 1, "base", inst.midiProgram))
    for staff in staves:
        flat = staff.flatten()
        for mark in flat.getElementsByClass(expressions.TextExpression):
            events.extend((float(mark.offset), 1, s, None) for s in switches(str(mark.content or "")))
        for el in flat.notes:
            if any("SnapPizzicato" in a.classes for a in getattr(el, "articulations", ())):
                events.append((float(el.offset), 2, "note_pizz", 1))
                events.append((float(el.offset + el.quarterLength), 0, "note_pizz", -1))
    if not events:
        return [], []
    base, base_program, bowing, muted, note_pizz = None, own, None, False, 0
    offsets: list[float] = []
    programs: list[int] = []
    for offset, _, what, value in sorted(events, key=lambda e: (e[0], e[1])):
        if what == "base":
            base = None if value == own else int(value)
            base_program = own if base is None else base
        elif what == "note_pizz":
            note_pizz += value
        elif what in ("pizz", "arco"):
            bowing = what
        elif what in ("mute", "open"):
            muted = what == "mute"
        else:  # normal
            bowing, muted = None, False
        now = _program(base, base_program, bowing, muted, note_pizz > 0)
        if offsets and abs(offsets[-1] - offset) < 1e-9:
            offsets.pop()
            programs.pop()
        if (programs[-1] if programs else OWN_PROGRAM) != now:
            offsets.append(offset)
            programs.append(now)
    return offsets, programs


def _program(base: int | None, base_program: int | None, bowing: str | None, muted: bool,
             note_pizz: bool) -> int:
    """The program a player with this technique sounds on (:data:`OWN_PROGRAM`: its own)."""
    plucked = note_pizz or bowing == "pizz"
    if base_program in BOWED_STRINGS and plucked:
        return PIZZICATO_STRINGS
    if base_program in PLUCKED_DOUBLE_BASS and bowing == "arco" and not note_pizz:
        return CONTRABASS
    if base_program in TRUMPETS and muted:
        return MUTED_TRUMPET
    return OWN_PROGRAM if base is None else base


def _played(offsets: list[float], programs: list[int], tl: form.Timeline):
    """``(played quarter notes, program)`` wherever the program in force changes as the
    music is played: within a measure, and at every jump to a place in another state."""
    segments = tl.segments or ((0.0, 0.0, math.inf),)
    current = OWN_PROGRAM
    for written, played, length in segments:
        i = bisect.bisect_right(offsets, written + 1e-9) - 1
        state = programs[i] if i >= 0 else OWN_PROGRAM
        if state != current:
            yield played, state
            current = state
        for j in range(i + 1, len(offsets)):
            if offsets[j] >= written + length - 1e-9:
                break
            if programs[j] != current:
                yield played + offsets[j] - written, programs[j]
                current = programs[j]
