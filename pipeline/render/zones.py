"""Notes the soundfont cannot play, played where it can: no note is silent.

A soundfont preset has samples only for the keys and velocities its zones cover
(:mod:`pipeline.settings.soundfont_zones`); FluidSynth plays nothing for any other note
(FluidR3's contrabass stops at A3, MuseScore General's pianos have no layer below velocity 3).
Such a note is played an octave in (or two, the fewest that reach a zone, towards the middle of
the preset's keys); where no octave helps, by its family's fallback preset (``[fallback]`` in
``data/ranges.toml``), switched to at the note's start and back at the next note's; where that
has no sample either, at the nearest velocity the preset has.

Like the attack compensation, this belongs to the voices, not to the music: it makes the
performance that is rendered, and ``performance.mid`` keeps the written notes.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from pipeline.model import OWN_PROGRAM, Control, Note, Performance, Track, Voice, ZoneRefit
from pipeline.render.attack import note_programs
from pipeline.settings.ranges import fallback_programs, note_name, ranges
from pipeline.settings.soundfont_zones import Coverage, coverage
from pipeline.dsp.fluidsynth import DRUM_BANK

log = logging.getLogger(__name__)

MAX_BARS = 20
MAX_OCTAVES = 10


def fit_to_zones(performance: Performance, voices: tuple[Voice, ...]
                 ) -> tuple[Performance, tuple[tuple[ZoneRefit, ...], ...]]:
    """The performance to render, every note where its preset has samples, and per track what
    was moved (see the module). Drum kits and voices with no preset are left as they are."""
    tracks, refits = [], []
    for track, voice in zip(performance.tracks, voices):
        if track.is_percussion or voice.is_percussion or not voice.preset_name or not track.notes:
            tracks.append(track)
            refits.append(())
            continue
        played, found = _fit(performance, track, voice)
        tracks.append(played)
        refits.append(found)
        for r in found:
            log.info("zones: %s: %d notes (%s) played by %s", track.name, r.notes,
                     ", ".join(r.keys), r.how)
    if not any(refits):
        return performance, tuple(refits)
    return replace(performance, tracks=tuple(tracks)), tuple(refits)


def _coverage(voice: Voice, program: int, cache: dict) -> Coverage:
    """The preset a program change to ``program`` selects (the voice's bank, else bank 0, as
    :func:`pipeline.render.preset_holder.program_change` does)."""
    if program not in cache:
        found = coverage(voice.soundfont, voice.bank, program)
        if found.empty and voice.bank not in (0, DRUM_BANK):
            found = coverage(voice.soundfont, 0, program)
        cache[program] = found
    return cache[program]


def _fit(performance: Performance, track: Track, voice: Voice
         ) -> tuple[Track, tuple[ZoneRefit, ...]]:
    notes = track.notes
    programs = np.array(note_programs(track, voice), dtype=np.int64)
    pitch = np.fromiter((n.pitch for n in notes), dtype=np.int64, count=len(notes))
    velocity = np.fromiter((n.velocity for n in notes), dtype=np.int64, count=len(notes))
    cache: dict[int, Coverage] = {}
    ok = np.ones(len(notes), dtype=bool)
    for p in np.unique(programs).tolist():
        mine = programs == p
        ok[mine] = _coverage(voice, p, cache).covers(pitch[mine], velocity[mine])
    if ok.all():
        return track, ()
    new_pitch, new_velocity = pitch.copy(), velocity.copy()
    how = np.array([""] * len(notes), dtype=object)
    fallback = fallback_programs()[voice.family]
    for i in np.flatnonzero(~ok).tolist():  # per note beyond the zones: few
        own = _coverage(voice, int(programs[i]), cache)
        key = _octave_in(own, int(pitch[i]), int(velocity[i]))
        if key is not None:
            new_pitch[i] = key
            how[i] = "octave up" if key > pitch[i] else "octave down"
            continue
        other = _coverage(voice, fallback, cache)
        key = _octave_in(other, int(pitch[i]), int(velocity[i]))
        if key is not None and fallback != programs[i]:
            new_pitch[i] = key
            how[i] = "fallback preset"
            continue
        key, vel = _nearest_velocity(own, int(pitch[i]), int(velocity[i]))
        if key is None:  # the preset plays nothing at all: nothing can be done here
            continue
        new_pitch[i], new_velocity[i], how[i] = key, vel, "velocity"
    group = _fallback_ticks(notes, how == "fallback preset")
    for i in np.flatnonzero(group & (how != "fallback preset")).tolist():
        # a chord the fallback plays: its other notes too, where it has samples for them
        key = _octave_in(_coverage(voice, fallback, cache), int(pitch[i]), int(velocity[i]))
        new_pitch[i] = key if key is not None else pitch[i]
        how[i] = "fallback preset"
    played = tuple(n if how[i] == "" else Note(n.on, n.off, int(new_pitch[i]),
                                                int(new_velocity[i]))
                   for i, n in enumerate(notes))
    controls = _fallback_switches(track, programs, how == "fallback preset", fallback, voice)
    span = ranges().get(voice.instrument)
    written = span.transposition if span is not None else 0  # named as the part shows them
    found = []
    for kind in ("octave up", "octave down", "fallback preset", "velocity"):
        at = np.flatnonzero(how == kind)
        if at.size == 0:
            continue
        ticks = np.sort(np.fromiter((notes[i].on for i in at.tolist()), dtype=np.int64,
                                    count=at.size))
        keys = sorted(set(pitch[at].tolist()), reverse=kind == "octave down")
        found.append(ZoneRefit(
            how=kind, notes=int(at.size), keys=tuple(note_name(k + written) for k in keys),
            bars=tuple(list(dict.fromkeys(performance.bar_numbers(ticks)))[:MAX_BARS]),
            preset=_coverage(voice, fallback, cache).name or f"program {fallback}"
            if kind == "fallback preset" else None))
    return replace(track, notes=played, controls=controls), tuple(found)


def _octave_in(cov: Coverage, key: int, velocity: int) -> int | None:
    """``key`` moved by the fewest octaves that reach a zone taking ``velocity``, towards the
    middle of the preset's keys when both ways do (``key`` itself when it is covered)."""
    playable = np.flatnonzero(cov.cells[:, min(max(velocity, 0), 127)])
    if playable.size == 0:
        return None
    middle = (playable[0] + playable[-1]) / 2.0
    first = 12 if key < middle else -12
    if cov.cells[min(max(key, 0), 127), min(max(velocity, 0), 127)] and 0 <= key <= 127:
        return key
    for k in range(1, MAX_OCTAVES + 1):
        for shift in (first * k, -first * k):
            moved = key + shift
            if 0 <= moved <= 127 and cov.cells[moved, velocity]:
                return moved
    return None


def _nearest_velocity(cov: Coverage, key: int, velocity: int) -> tuple[int | None, int]:
    """The covered (key, velocity) nearest ``velocity``, on ``key`` or the nearest octave of it
    that has any."""
    for k in range(0, MAX_OCTAVES + 1):
        for moved in sorted({key + 12 * k, key - 12 * k}):
            if 0 <= moved <= 127 and cov.cells[moved].any():
                layers = np.flatnonzero(cov.cells[moved])
                return moved, int(layers[np.argmin(np.abs(layers - velocity))])
    return None, velocity


def _fallback_switches(track: Track, programs: np.ndarray, fallback_notes: np.ndarray,
                       fallback: int, voice: Voice) -> tuple[Control, ...]:
    """The track's controls with a program change to the fallback preset at each fallback
    note's start and back to the program in force at the next note's (after the score's own
    changes at the first tick, before them at the second)."""
    if not fallback_notes.any():
        return track.controls
    on = np.fromiter((n.on for n in track.notes), dtype=np.int64, count=len(track.notes))
    ticks = np.unique(on)
    wanted = np.zeros(ticks.size, dtype=bool)  # the ticks whose notes the fallback plays
    wanted[np.searchsorted(ticks, on[fallback_notes])] = True
    first_at = {int(t): int(programs[np.flatnonzero(on == t)[0]]) for t in ticks[~wanted].tolist()}
    added: list[tuple[int, int, Control]] = []
    for k, t in enumerate(ticks.tolist()):
        before = wanted[k - 1] if k else False
        if wanted[k] and not before:
            added.append((t, 1, Control(t, "program_change", fallback, voice.bank)))
        elif before and not wanted[k]:
            back = first_at[t]
            added.append((t, -1, Control(t, "program_change",
                                         OWN_PROGRAM if back == voice.program else back,
                                         voice.bank)))
    rows = [(c.tick, 0, c) for c in track.controls] + added
    return tuple(c for _, _, c in sorted(rows, key=lambda r: (r[0], r[1])))


def _fallback_ticks(notes: tuple[Note, ...], fallback_notes: np.ndarray) -> np.ndarray:
    """Which notes start together with a note the fallback preset plays."""
    if not fallback_notes.any():
        return fallback_notes
    on = np.fromiter((n.on for n in notes), dtype=np.int64, count=len(notes))
    return np.isin(on, on[fallback_notes])
