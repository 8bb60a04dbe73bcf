"""Assign stage: each track gets a virtual instrument (soundfont, bank, program)."""
from __future__ import annotations

import logging
from pathlib import Path

from . import instruments
from .model import Performance, Track, Voice
from .soundfonts import fallback_soundfont
from .synth import DRUM_BANK, Synth

log = logging.getLogger(__name__)


def assign(performance: Performance, *, soundfont: Path, sample_rate: int = 48000) -> tuple[Voice, ...]:
    """Choose a voice per track: the score's own program first, then the instrument map.

    A program the soundfont lacks falls back to its bank 0, then to another GM soundfont, then
    to a piano, each with a warning.
    """
    choir = _looks_like_choir(performance.tracks)
    fallback = fallback_soundfont(soundfont)
    with Synth(sample_rate=sample_rate, channels=1) as probe:
        return tuple(_voice(t, soundfont, fallback, probe, choir) for t in performance.tracks)


def _looks_like_choir(tracks) -> bool:
    voiced = sum(1 for t in tracks if instruments.voice_for(t.name) or (
        (info := instruments.lookup(t.name)) and info.family == "voices"))
    return len(tracks) > 1 and voiced == len(tracks)


def _voice(track: Track, soundfont: Path, fallback: Path | None, probe: Synth, choir: bool) -> Voice:
    info = (instruments.voice_for(track.name) if choir else None) or \
        instruments.lookup(track.name) or instruments.lookup(track.instrument)
    if track.is_percussion:
        bank, program, source = DRUM_BANK, track.program or 0, "drum kit"
        family = "percussion"
    elif track.program is not None and not (choir and info):
        bank, program, source = track.bank or 0, track.program, "score"
        family = info.family if info and info.program == program else instruments.family_of_program(program)
    elif info is not None:
        bank, program, source, family = 0, info.program, "instrument map", info.family
    else:
        log.warning("part '%s': unknown instrument; playing it on a piano", track.name)
        bank, program, source, family = 0, 0, "default", "keyboards"
    return _available(track, soundfont, fallback, bank, program, family, source, probe)


def _available(track, soundfont, fallback, bank, program, family, source, probe) -> Voice:
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
                log.warning("part '%s': %s has no bank %d program %d; using %s bank %d program %d (%s)",
                            track.name, soundfont.name, bank, program, sf.name, b, p, name)
            return Voice(soundfont=sf, bank=b, program=p, preset_name=name, is_percussion=drum,
                         family=family, source=source)
    return Voice(soundfont=soundfont, bank=bank, program=program, preset_name="", is_percussion=drum,
                 family=family, source=source)
