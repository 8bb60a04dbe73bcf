"""Assign stage: each track gets a virtual instrument (soundfont, bank, program) and one
canonical instrument name that the later stages read."""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from pipeline.settings import instruments
from pipeline.model import Performance, Track, Voice
from pipeline.settings.sidecar import PartSettings
from pipeline.settings.soundfonts import fallback_soundfont
from pipeline.dsp.fluidsynth import DRUM_BANK, Synth

log = logging.getLogger(__name__)


def assign(performance: Performance, *, soundfont: Path, sample_rate: int = 48000,
           parts: tuple[PartSettings | None, ...] | None = None) -> tuple[Voice, ...]:
    """Choose a voice per track: a sidecar's part settings first, then the score's own program,
    then the instrument map.

    ``parts`` holds one :class:`PartSettings` (or ``None``) per track. A program the soundfont
    lacks falls back to its bank 0, then to another GM soundfont, then to a piano, each with a
    warning.
    """
    choir = _looks_like_choir(performance.tracks)
    fallback = fallback_soundfont(soundfont)
    parts = parts or (None,) * len(performance.tracks)
    with Synth(sample_rate=sample_rate, channels=1) as probe:
        return tuple(choose_voice(t, p or PartSettings(), soundfont, fallback, probe, choir,
                                  where=performance.source)
                     for t, p in zip(performance.tracks, parts))


def one_line(name: str) -> str:
    """A part's name as one line (a name written over two lines keeps its words)."""
    return " ".join(name.split())


def _looks_like_choir(tracks) -> bool:
    voiced = sum(1 for t in tracks if instruments.voice_for(t.name) or (
        (info := instruments.lookup(t.name)) and info.family == "voices"))
    return len(tracks) > 1 and voiced == len(tracks)


def choose_voice(track: Track, part: PartSettings, soundfont: Path, fallback: Path | None,
                 probe: Synth, choir: bool, *, where: Path | str | None = None) -> Voice:
    """The voice for one track (see :func:`assign`), probing ``soundfont`` with ``probe``;
    ``where``: the score, named in warnings."""
    named = (instruments.voice_for(track.name) if choir else None) or \
        instruments.lookup_first(track.name, track.instrument)
    info = part.instrument or named
    soundfont = part.soundfont or soundfont
    if track.is_percussion:  # a sidecar's program picks another kit
        bank, family = DRUM_BANK, "percussion"
        program, source = (part.program, "sidecar") if part.program is not None else \
            (track.program or 0, "drum kit")
    elif part.program is not None or part.instrument is not None:
        program = part.program if part.program is not None else info.program
        bank, source = part.bank or 0, "sidecar"
        family = info.family if info and (part.instrument or info.program == program) \
            else instruments.family_of_program(program)
    elif track.program is not None and not (choir and info):
        bank, program, source = track.bank or 0, track.program, "score"
        family = info.family if info and info.program == program else instruments.family_of_program(program)
    elif info is not None:
        bank, program, source, family = 0, info.program, "instrument map", info.family
    else:
        log.warning("%s: part '%s': unknown instrument; playing it on a piano", where or "score",
                    one_line(track.name))
        bank, program, source, family = 0, 0, "default", "keyboards"
    if part.bank is not None and not track.is_percussion:
        bank, source = part.bank, "sidecar"
    voice = _available(track, soundfont, fallback, bank, program, family, source, probe, where)
    return _with_instrument(voice, track, part, named)


def _with_instrument(voice: Voice, track: Track, part: PartSettings,
                     named: instruments.InstrumentInfo | None) -> Voice:
    """The one canonical instrument a track stands for: the sidecar's, else a singer for a
    voice part, else its name's, else its soundfont preset's name."""
    info = part.instrument or \
        (instruments.voice_for(track.name) if voice.family == "voices" else None) or named or \
        (instruments.lookup(voice.preset_name) if voice.preset_name else None)
    return replace(voice, instrument=info.name if info else "")


def _available(track, soundfont, fallback, bank, program, family, source, probe,
               where=None) -> Voice:
    drum = track.is_percussion
    tries = [(soundfont, bank, program)]
    if bank not in (0, DRUM_BANK):
        tries.append((soundfont, 0, program))
    if drum and program != 0:
        tries.append((soundfont, DRUM_BANK, 0))
    if fallback is not None:
        tries.append((fallback, bank if drum else 0, program if not drum else 0))
    tries.append((soundfont, DRUM_BANK if drum else 0, 0))
    for sf, b, p in tries:
        name = probe.preset_name(sf, b, p)
        if name is not None:
            if (sf, b, p) != tries[0]:
                log.warning("%s: part '%s': %s has no bank %d program %d; using %s bank %d "
                            "program %d (%s)", where or "score", one_line(track.name),
                            soundfont.name, bank, program, sf.name, b, p, name)
            return Voice(soundfont=sf, bank=b, program=p, preset_name=name, is_percussion=drum,
                         family=family, source=source)
    return Voice(soundfont=soundfont, bank=bank, program=program, preset_name="", is_percussion=drum,
                 family=family, source=source)
