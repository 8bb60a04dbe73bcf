"""Balance calibration: soundfont presets are not recorded at equal loudness.

For each voice a reference phrase at mf is rendered dry by FluidSynth (once per soundfont, bank,
program and register, then cached on disk), its loudness measured, and the stem's gain set so
that mf on every instrument sits at ``REFERENCE_LUFS``.

The phrase is repeated crotchets at 120 bpm (0.5 s), not long held notes: a piano's, harp's or
guitar's long note is mostly decay, so measuring one made those instruments read quiet and come
out too loud beside sustained ones (piano about +2 LU over the strings and winds in crotchets,
+5.6 LU in quavers, on both GM soundfonts). Repeated crotchets weigh attack and early decay as
music mostly does: decaying minus sustaining instruments −0.2 LU (MuseScore General) and
−0.3 LU (FluidR3) for a crotchet passage, +3.2 / −2.2 LU for quavers / minims. Only a constant
gain per stem: the written dynamics still move each stem up and down as the score says. A track
whose level is shaped by expression (CC11, :mod:`pipeline.score.expression`) plays a steady mf at its
expression baseline, so its reference is rendered there too.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.dsp.loudness import integrated_lufs
from pipeline.files import read_cache, write_cache
from pipeline.model import DYNAMIC_VELOCITY, REFERENCE_LUFS, Performance, Track, Voice
from pipeline.dsp.fluidsynth import Synth
from pipeline.render import voice_cache

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: the expression baseline is part of the key; 3: repeated crotchets
REFERENCE_VELOCITY = DYNAMIC_VELOCITY["mf"]
NOTE_S, GAP_S = 0.45, 0.05        # a crotchet at 120 bpm, slightly detached
REPEATS = 4                       # each reference pitch struck this many times
MAX_CORRECTION_DB = 18.0          # a soundfont preset this far off is broken, not quiet
REGISTER_STEP = 3                 # reference pitches on a grid of minor thirds: a small cache
EXPRESSION_CC, FULL_EXPRESSION = 11, 127  # a track without expression plays at CC11's default


def cache_file() -> Path:
    return voice_cache.cache_file("calibration.json")


def reference_pitches(track: Track, voice: Voice) -> tuple[int, ...]:
    """The notes the reference plays: the part's middle register (its median pitch on a grid of
    minor thirds, a third either side); for a drum kit, its three most used instruments."""
    pitches = [n.pitch for n in track.notes]
    if not pitches:
        return ()
    if voice.is_percussion:
        return tuple(sorted(p for p, _ in Counter(pitches).most_common(3)))
    centre = int(REGISTER_STEP * round(float(np.median(pitches)) / REGISTER_STEP))
    return tuple(int(np.clip(p, 0, 127)) for p in (centre - 3, centre, centre + 3))


def _key(voice: Voice, pitches: tuple[int, ...], expression: int, sample_rate: int) -> str:
    return (f"v{CACHE_VERSION}|{voice_cache.voice_key(voice)}|{','.join(map(str, pitches))}|"
            f"cc11={expression}|{sample_rate}")


def _render_reference(synth: Synth, voice: Voice, pitches: tuple[int, ...], expression: int,
                      sample_rate: int) -> np.ndarray:
    """Each reference pitch struck ``REPEATS`` times at CC11 ``expression``, dry, shape
    (2, frames)."""
    synth.select(0, voice.soundfont, voice.bank, voice.program, drum=voice.is_percussion)
    synth.cc(0, EXPRESSION_CC, expression)  # set every time: the channel is reused
    on, gap = int(NOTE_S * sample_rate), int(GAP_S * sample_rate)
    strikes = [p for p in pitches for _ in range(REPEATS)]
    out = np.zeros((2, len(strikes) * (on + gap)), dtype=np.float32)
    pos = 0
    for p in strikes:
        synth.noteon(0, p, REFERENCE_VELOCITY)
        synth.process_into(out, pos, on)
        synth.noteoff(0, p)
        synth.process_into(out, pos + on, gap)
        pos += on + gap
    synth.cc(0, 120, 0)  # all sound off before the next voice
    return out


def calibration_db(performance: Performance, voices: tuple[Voice, ...], *,
                   sample_rate: int = 48000) -> tuple[float, ...]:
    """Gain (dB) per track that brings its instrument's mf to ``REFERENCE_LUFS``.

    Reference loudness is read from the cache when there; otherwise rendered and stored.
    Tracks without notes get 0 dB.
    """
    path = cache_file()
    cache = read_cache(path)
    gains, dirty, synth = [], False, None
    try:
        for track, voice in zip(performance.tracks, voices):
            pitches = reference_pitches(track, voice)
            if not pitches or not voice.preset_name:
                gains.append(0.0)
                continue
            expression = track.expression or FULL_EXPRESSION
            key = _key(voice, pitches, expression, sample_rate)
            if key not in cache:
                if synth is None:
                    synth = Synth(sample_rate=sample_rate, channels=1)
                audio = _render_reference(synth, voice, pitches, expression, sample_rate)
                lufs = integrated_lufs(audio, sample_rate)
                cache[key] = round(lufs, 3) if np.isfinite(lufs) else None
                dirty = True
            lufs = cache[key]
            if lufs is None:
                gains.append(0.0)
                continue
            gain = float(np.clip(REFERENCE_LUFS - lufs, -MAX_CORRECTION_DB, MAX_CORRECTION_DB))
            log.info("calibrate: %s (%s) mf at %.1f LUFS → %+.1f dB", track.name,
                     voice.preset_name, lufs, gain)
            gains.append(round(gain, 2))
    finally:
        if synth is not None:
            synth.close()
    if dirty:
        write_cache(path, cache, "calibration")
    return tuple(gains)
