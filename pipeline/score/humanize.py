"""Humanization: the small, seeded unevenness of players, applied to a finished performance.

Off by default (``amount`` 0 returns the performance untouched). At ``amount`` 1 a note moves
by at most :data:`MAX_TIMING_MS` and its velocity by at most :data:`MAX_VELOCITY`; smaller
amounts scale both. The timing is the sum of

- a **drift** per player (track): a slowly varying random walk (an Ornstein–Uhlenbeck process
  with a :data:`DRIFT_TIME_S` time constant, sampled every :data:`DRIFT_STEP_S`), so a player
  is a little ahead or behind for a while, as players are, rather than trembling note to note;
- a **per-onset** jitter shared by all notes struck together, so a chord moves as one;
- a tiny **per-note** jitter (:data:`NOTE_MS`), so a chord's notes stay within a few ms.

Notes keep their lengths; nothing starts before tick 0, no note is shorter than one tick, the
notes of one key keep their order and each ends before the key is struck again, and controls (program changes, pedal) move with
the player's drift but stay in order and never after the notes they precede. Each track draws
from its own generator seeded by ``(seed, track index)``, so the result depends only on the
seed.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.signal import lfilter

from pipeline.errors import PipelineError
from pipeline.model import Control, Note, Performance, TempoMap, Track

DEFAULT_SEED = 20240
MAX_TIMING_MS = 15.0      # at amount 1: the largest timing deviation of any note
MAX_VELOCITY = 6          # at amount 1: the largest velocity change
DRIFT_MS = 10.0           # share of the timing budget for the player's drift
ONSET_MS = 3.0            # for a jitter shared by the notes of one onset
NOTE_MS = 2.0             # for each note's own jitter (the chord spread stays under 2 × this)
DRIFT_TIME_S = 4.0        # how slowly the drift wanders
DRIFT_STEP_S = 0.25
DRIFT_SPREAD = 2.5        # the drift's standard deviations that fill DRIFT_MS before clipping


def check(amount: float, seed: int) -> None:
    """Raise :class:`PipelineError` (one line) for an amount outside 0–1 or a negative seed."""
    if not 0.0 <= amount <= 1.0:
        raise PipelineError(f"--humanize {amount:g}: give an amount from 0 (off) to 1 "
                            f"(±{MAX_TIMING_MS:g} ms, ±{MAX_VELOCITY} velocity)")
    if seed < 0:
        raise PipelineError(f"--seed {seed}: give a whole number from 0 up")


def humanize(performance: Performance, *, amount: float, seed: int = DEFAULT_SEED) -> Performance:
    """The performance with seeded timing and velocity variation (see the module docstring).

    Parameters
    ----------
    amount
        0–1: 0 leaves the performance as it is; 1 moves notes by up to ±15 ms and velocities
        by up to ±6.
    seed
        The same seed gives the same result.
    """
    check(amount, seed)
    if amount == 0:
        return performance
    tracks = tuple(_track(t, performance.tempo_map, amount,
                          np.random.default_rng([seed, i]))
                   for i, t in enumerate(performance.tracks))
    return replace(performance, tracks=tracks)


def _track(track: Track, tempo_map: TempoMap, amount: float, rng: np.random.Generator) -> Track:
    if not track.notes:
        return track
    on = np.array([n.on for n in track.notes], dtype=np.int64)
    off = np.array([n.off for n in track.notes], dtype=np.int64)
    pitch = np.array([n.pitch for n in track.notes], dtype=np.int64)
    vel = np.array([n.velocity for n in track.notes], dtype=np.int64)
    on_s = tempo_map.seconds(on)
    drift = _drift(float(on_s.max()), rng)

    onsets, which = np.unique(on, return_inverse=True)
    shared = rng.uniform(-1, 1, len(onsets)) * ONSET_MS
    own = rng.uniform(-1, 1, len(on)) * NOTE_MS
    shift_ms = np.clip(drift(on_s) + shared[which] + own, -MAX_TIMING_MS, MAX_TIMING_MS) * amount
    new_on = np.maximum(0, tempo_map.ticks(on_s + shift_ms / 1000.0))

    # one key's notes keep their order, a tick apart at least: within each key (by written
    # time) the onsets are made strictly increasing with one running maximum over all keys,
    # each key lifted above the ones before it
    order = np.lexsort((on, pitch))
    first = np.r_[True, pitch[order][1:] != pitch[order][:-1]]
    key = np.cumsum(first) - 1
    rank = np.arange(len(order)) - np.flatnonzero(first)[key]
    lift = key * (int(new_on.max()) + len(order) + 1)
    new_on[order] = np.maximum.accumulate(new_on[order] - rank + lift) - lift + rank
    new_off = np.maximum(off + (new_on - on), new_on + 1)

    # a note ends before its key is struck again (a late note-off would cut the next note)
    same_key_next = np.r_[~first[1:], False]
    next_on = np.r_[new_on[order][1:], 0]
    cut = new_off[order]
    cut = np.where(same_key_next, np.minimum(cut, next_on), cut)
    new_off[order] = np.maximum(cut, new_on[order] + 1)

    new_vel = np.clip(vel + np.round(rng.uniform(-1, 1, len(vel)) * MAX_VELOCITY * amount),
                      1, 127).astype(np.int64)
    # in the order they came: the k-th note is still the k-th (render sorts events by time)
    notes = tuple(Note(int(a), int(b), int(p), int(v))
                  for a, b, p, v in zip(new_on, new_off, pitch, new_vel))
    controls = _controls(track.controls, tempo_map, drift, amount, on, new_on)
    return replace(track, notes=notes, controls=controls)


def _drift(duration_s: float, rng: np.random.Generator):
    """The player's drift in ms as a function of seconds: an Ornstein–Uhlenbeck walk of unit
    variance (filtered white noise), scaled and clipped to ±:data:`DRIFT_MS`."""
    steps = int(np.ceil(duration_s / DRIFT_STEP_S)) + 2
    a = np.exp(-DRIFT_STEP_S / DRIFT_TIME_S)
    noise = rng.standard_normal(steps + 1)
    # y[n] = a·y[n−1] + √(1−a²)·x[n], starting from a unit-variance state: stationary at once
    walk = lfilter([np.sqrt(1 - a * a)], [1, -a], noise[1:], zi=[a * noise[0]])[0]
    walk = np.clip(walk / DRIFT_SPREAD, -1, 1) * DRIFT_MS
    grid = np.arange(steps) * DRIFT_STEP_S
    return lambda seconds: np.interp(seconds, grid, walk)


def _controls(controls: tuple[Control, ...], tempo_map: TempoMap, drift, amount: float,
              on: np.ndarray, new_on: np.ndarray) -> tuple[Control, ...]:
    """Controls move with the drift, in their order, never after a note that was at or after
    them (a program change still comes before the notes it is for)."""
    if not controls:
        return controls
    ticks = np.array([c.tick for c in controls], dtype=np.int64)
    order = np.argsort(ticks, kind="stable")
    secs = tempo_map.seconds(ticks[order])
    moved = tempo_map.ticks(secs + drift(secs) * amount / 1000.0)
    by_time = np.argsort(on, kind="stable")
    later_min = np.minimum.accumulate(new_on[by_time][::-1])[::-1]  # earliest new onset from k on
    k = np.searchsorted(on[by_time], ticks[order], side="left")
    bound = np.where(k < len(on), later_min[np.minimum(k, len(on) - 1)], np.iinfo(np.int64).max)
    moved = np.maximum.accumulate(np.maximum(0, np.minimum(moved, bound)))
    out = list(controls)
    for j, tick in zip(order, moved):
        out[j] = replace(controls[j], tick=int(tick))
    return tuple(sorted(out, key=lambda c: c.tick))
