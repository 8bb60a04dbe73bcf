"""The typed objects that pass between stages.

Times inside a performance are MIDI ticks on a tempo map, so `performance.mid` holds exactly the
events that are rendered; seconds and sample positions are derived from ticks in one place
(:meth:`TempoMap.seconds`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np

TICKS_PER_QUARTER = 960
DEFAULT_TEMPO_BPM = 120.0
#: A program change to this number returns the track to its own voice, whatever the assign
#: stage chose (the score's program, the instrument map's or a sidecar's): after "arco" or
#: "senza sord." (:mod:`pipeline.score.techniques`).
OWN_PROGRAM = -1

#: Dynamic marking → MIDI velocity (the documented scale; mf is the reference level). Here, below
#: the stages, because the perform stage plays it and the render calibrates each instrument's mf.
DYNAMIC_VELOCITY = {
    "pppp": 10, "ppp": 20, "pp": 33, "p": 49, "mp": 64, "mf": 80, "f": 96, "ff": 112,
    "fff": 124, "ffff": 127,
    # one-note accents: loud attack, level afterwards unchanged (the perform stage's _Dynamics)
    "sf": 104, "sfz": 108, "sffz": 118, "sfp": 104, "sfpp": 104, "fz": 104, "rf": 100,
    "rfz": 104, "fp": 96, "pf": 49, "n": 10,
}
DEFAULT_VELOCITY = DYNAMIC_VELOCITY["mf"]
#: The loudness every instrument's mf is calibrated to by the render (near where FluidSynth puts
#: it); the mixer's stem compressors set their thresholds from it.
REFERENCE_LUFS = -36.0


@dataclass(frozen=True)
class TempoMap:
    """Piecewise-constant tempo: ``changes`` holds ``(tick, microseconds_per_quarter)``."""

    ticks_per_quarter: int = TICKS_PER_QUARTER
    changes: tuple[tuple[int, int], ...] = ((0, 500_000),)

    def __post_init__(self) -> None:
        if self.ticks_per_quarter <= 0:
            raise ValueError("ticks_per_quarter must be positive")
        if not self.changes or self.changes[0][0] != 0:
            raise ValueError("a tempo map must start at tick 0")
        if any(us <= 0 for _, us in self.changes):
            raise ValueError("tempo must be positive")

    def seconds(self, ticks: np.ndarray | int) -> np.ndarray:
        """Seconds from the start for each tick (vectorised)."""
        t = np.asarray(ticks, dtype=np.float64)
        starts = np.array([c[0] for c in self.changes], dtype=np.float64)
        sec_per_tick = np.array([c[1] for c in self.changes], dtype=np.float64) \
            / 1e6 / self.ticks_per_quarter
        seg_seconds = np.concatenate(([0.0], np.cumsum(np.diff(starts) * sec_per_tick[:-1])))
        i = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, None)
        return seg_seconds[i] + (t - starts[i]) * sec_per_tick[i]

    def ticks(self, seconds: np.ndarray | float) -> np.ndarray:
        """The (rounded) tick at each time in seconds: the inverse of :meth:`seconds`."""
        s = np.asarray(seconds, dtype=np.float64)
        starts = np.array([c[0] for c in self.changes], dtype=np.float64)
        sec_per_tick = np.array([c[1] for c in self.changes], dtype=np.float64) \
            / 1e6 / self.ticks_per_quarter
        start_s = self.seconds(starts)
        i = np.clip(np.searchsorted(start_s, s, side="right") - 1, 0, None)
        return np.round(starts[i] + (s - start_s[i]) / sec_per_tick[i]).astype(np.int64)

    def bpm_at(self, tick: int) -> float:
        """Quarter notes per minute in force at ``tick``."""
        us = [us for t, us in self.changes if t <= tick][-1]
        return 60_000_000.0 / us


@dataclass(frozen=True)
class Note:
    """One sounding note: ticks, MIDI pitch (sounding) and velocity 1–127."""

    on: int
    off: int
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Control:
    """A channel message other than a note: ``kind`` is ``control_change`` (number, value),
    ``program_change`` (number = program 0–127 or :data:`OWN_PROGRAM`, value = bank) or
    ``pitchwheel`` (value −8192…8191)."""

    tick: int
    kind: str
    number: int = 0
    value: int = 0


@dataclass(frozen=True)
class Track:
    """Everything one instrument (player) plays.

    ``program`` is the General MIDI program (0–127) the score asks for, when it says;
    ``family`` and ``instrument`` come from the instrument map or the score. ``expression`` is
    the CC11 value a steady dynamic is played at when the track's level is shaped by expression
    (sustaining instruments, :mod:`pipeline.score.expression`); None when velocities alone carry it.
    """

    name: str
    instrument: str
    notes: tuple[Note, ...]
    controls: tuple[Control, ...] = ()
    program: int | None = None
    bank: int | None = None
    is_percussion: bool = False
    expression: int | None = None

    @property
    def end_tick(self) -> int:
        ends = [n.off for n in self.notes] + [c.tick for c in self.controls]
        return max(ends, default=0)


@dataclass(frozen=True)
class PlayedBar:
    """One bar as it is played, in play order: a bar repeated or reached again by a D.C. is
    played (and listed) once per pass. Made by the perform stage from its own unrolling of
    repeats and jumps (:mod:`pipeline.score.form`); a MIDI file's are counted from its first
    time signature."""

    measure: int      # the written measure: its index in the score's parts (0 = the first)
    number: str       # the measure number printed in the score ("0" for a pickup, "12a", …)
    start_tick: int   # on the performance's tempo map (rit., fermatas included)
    end_tick: int
    time_played: int = 1  # 2 on a repeat's second pass, …


@dataclass(frozen=True)
class BarTime:
    """A played bar in the audio: seconds from the start of the stems, the mix and the
    masters (the lead-in included)."""

    measure: int
    number: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Timemap:
    """Where each played bar is heard in the audio (:meth:`Performance.timemap`)."""

    lead_in_s: float
    bars: tuple[BarTime, ...] = ()


@dataclass(frozen=True)
class Performance:
    """A score as played: one track per instrument, on one tempo map; ``bars`` in the order
    they are played (a MIDI file's are counted from its first time signature)."""

    title: str
    composer: str
    tracks: tuple[Track, ...]
    tempo_map: TempoMap = field(default_factory=TempoMap)
    source: Path | None = None
    time_signature: tuple[int, int] = (4, 4)
    copyright: str = ""   # the score's rights notice, written into the audio files' tags
    bars: tuple[PlayedBar, ...] = ()

    @property
    def end_tick(self) -> int:
        return max((t.end_tick for t in self.tracks), default=0)

    @property
    def duration_s(self) -> float:
        """Seconds from the start to the last note-off (release tails not counted)."""
        return float(self.tempo_map.seconds(self.end_tick))

    @property
    def note_count(self) -> int:
        return sum(len(t.notes) for t in self.tracks)

    def bar_numbers(self, ticks: np.ndarray) -> list[str]:
        """The number (as printed) of the bar each tick is played in (vectorised lookup)."""
        ticks = np.asarray(ticks, dtype=np.int64)
        if not self.bars:
            return ["1"] * ticks.size
        starts = np.array([b.start_tick for b in self.bars], dtype=np.int64)
        i = np.clip(np.searchsorted(starts, ticks, side="right") - 1, 0, None)
        return [self.bars[k].number for k in i.tolist()]

    def timemap(self, lead_in_s: float) -> Timemap:
        """The played bars in seconds of audio whose score time 0 is at ``lead_in_s`` (the
        stems' :attr:`Stems.lead_in_s`)."""
        if not self.bars:
            return Timemap(round(lead_in_s, 4))
        ticks = np.array([(b.start_tick, b.end_tick) for b in self.bars], dtype=np.int64)
        seconds = self.tempo_map.seconds(ticks) + lead_in_s
        return Timemap(round(lead_in_s, 4), tuple(
            BarTime(b.measure, b.number, round(float(a), 4), round(float(z), 4))
            for b, (a, z) in zip(self.bars, seconds)))


@dataclass(frozen=True)
class Voice:
    """The virtual instrument that plays one track."""

    soundfont: Path
    bank: int
    program: int
    preset_name: str
    is_percussion: bool
    family: str
    source: str  # where the choice came from: score, instrument map, sidecar, drum kit, default
    #: the instrument-map name the player stands for ('' when unknown), decided once by the
    #: assign stage: seating, ensemble detection and the mix's filters all read it from here
    instrument: str = ""


@dataclass(frozen=True)
class Stem:
    """One instrument's dry stereo render on disk (float32 WAV)."""

    index: int
    name: str
    path: Path


@dataclass(frozen=True)
class Stems:
    """All stems of a piece: sample-aligned, all ``frames`` long."""

    sample_rate: int
    frames: int
    stems: tuple[Stem, ...]
    #: the silence before the score's start (the attack compensation's head start for notes
    #: at the very beginning): score time t is at ``lead_in_s + t`` in every stem and the mix
    lead_in_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class AttackApplied:
    """How much earlier than written a part's notes start, to be heard on the beat (made by
    the render stage's attack compensation, read by the report)."""

    median_ms: float
    max_ms: float
    held_back: int  # notes that had to give up some of their head start


@dataclass(frozen=True)
class VibratoApplied:
    """A part's vibrato: the style added (its depth and rate), or the preset's own swing."""

    added: str | None = None
    depth_cents: float | None = None
    rate_hz: float | None = None
    own_cents: float | None = None


@dataclass(frozen=True)
class OutOfRange:
    """Notes of a part beyond its instrument's range (the assign stage's range check): all on
    one ``side`` ("below" or "above"), ``beyond`` the "professional" range (no player reaches
    them) or only the "practical" one (a professional can play them)."""

    side: str
    beyond: str
    notes: int
    written: tuple[str, ...]   # the notes as the player's part shows them, the farthest first
    bars: tuple[str, ...]      # the bars they are in (as printed), in play order, distinct


@dataclass(frozen=True)
class ZoneRefit:
    """Notes a part's soundfont preset has no samples for (no zone covers their key and
    velocity), and how the render played them instead: ``how`` is "octave up", "octave down",
    "fallback preset" (``preset``: its name) or "velocity" (the nearest one it has)."""

    how: str
    notes: int
    keys: tuple[str, ...]      # the notes as the player's part shows them, the farthest first
    bars: tuple[str, ...]
    preset: str | None = None


class StemStream(Protocol):
    """What the mix stage reads of stems handed over while they are rendered (the render's
    :class:`~pipeline.render.stems.StemFeed` is one), so that the mixer needs nothing of the
    render itself."""

    stems: tuple[Stem, ...]
    sample_rate: int
    max_frames: int  # the most frames the stems can have; their length is known only at the end

    def blocks(self, prepare: Callable[[int, np.ndarray | None, int], Any] | None = None
               ) -> Iterator[tuple[int, int, list]]:
        """Every block of the stems, in order: ``(start, frames, parts)``, ``parts[i]`` stem
        ``i``'s (2, frames) float32 audio or None where it is silent. With ``prepare(i,
        audio, width)``, ``parts[i]`` is what it returned for that block instead, called once
        per stem and block, in order for each stem, where the stream makes the block (its
        ``width`` ≥ ``frames``: keep the first ``frames`` of what it makes)."""
        ...


class AudioBuffers(Protocol):
    """Where the mix and master stages get their whole-piece arrays (handed to them
    explicitly; :data:`IN_MEMORY` when not): the render's own keeps them in files mapped into
    memory (:mod:`pipeline.speed.file_backed`), so a piece's length costs disk, not memory."""

    def empty(self, channels: int, frames: int) -> np.ndarray:
        """A C-contiguous float32 array shaped (channels, frames), not filled."""
        ...


class _InMemory:
    """Whole-piece arrays in memory (every frame is written before it is read: a fresh page
    read first is mapped to the zero page and copied on the write that follows)."""

    def empty(self, channels: int, frames: int) -> np.ndarray:
        return np.empty((channels, frames), dtype=np.float32)


IN_MEMORY: AudioBuffers = _InMemory()


@dataclass(frozen=True)
class StemLevel:
    """One player's place and levels in the mix (made by the mix stage)."""

    part: str
    file: str                      # the dry stem, relative to the piece's folder
    pan: float                     # −1 left … +1 right
    depth: float                   # 0 front … 1 back
    seat: str | None
    bus: str | None
    peak_dbfs: float               # of the dry stem
    loudness_lufs: float | None    # of the dry stem
    calibration_db: float
    gain_db: float                 # fader, balance and the mix's gain staging
    send_db: float                 # to the room
    predelay_ms: float
    damping_hz: float
    mix_lufs: float | None         # the player's loudness in the mix
    mix_stem: str | None           # its post-fader file, when written
    instrument: str
    family: str
    eq: tuple[Mapping, ...]        # the family's bands (kind, freq_hz, gain_db, q)
    compressor: Mapping | None
    level_db: float                # the sidecar's level


@dataclass(frozen=True)
class Mix:
    """The stereo mix, whole in memory, with per-stem figures."""

    audio: np.ndarray  # (2, frames) float32
    sample_rate: int
    stem_levels: tuple[StemLevel, ...]
    settings: dict
    loudness_lufs: float          # integrated, measured once by the mix stage
    short_term_lufs: np.ndarray   # 3 s loudness every 100 ms


@dataclass(frozen=True)
class SpanGain:
    """A per-frame gain that is exactly 1 except in a few stretches (what a limiter does to a
    piece), kept as the stretches alone: ``frames`` gains, 1 everywhere but from each
    ``starts[i]`` over ``gains[i]`` (float32, in increasing order, not overlapping)."""

    frames: int
    starts: tuple[int, ...] = ()
    gains: tuple[np.ndarray, ...] = ()

    def slice(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """The gain of frames ``start``…``stop`` as an array (float32), into ``out`` if given."""
        if out is None:
            out = np.ones(stop - start, dtype=np.float32)
        else:
            out.fill(1.0)
        for s, g in zip(self.starts, self.gains):
            a, b = max(start, s), min(stop, s + g.size)
            if a < b:
                out[a - start:b - start] = g[a - s:b - s]
        return out

    def crop(self, start: int, stop: int) -> "SpanGain":
        """Frames ``start``…``stop`` only, counted from ``start``."""
        starts, gains = [], []
        for s, g in zip(self.starts, self.gains):
            a, b = max(start, s), min(stop, s + g.size)
            if a < b:
                starts.append(a - start)
                gains.append(g[a - s:b - s])
        return SpanGain(max(0, stop - start), tuple(starts), tuple(gains))

    def lowest(self) -> float:
        """The smallest gain (1 when nothing is reduced)."""
        return min([1.0, *(float(g.min()) for g in self.gains if g.size)])

    def column_lowest(self, columns: int) -> np.ndarray:
        """The smallest gain in each of ``columns`` consecutive slices of ``frames // columns``
        frames, as :func:`pipeline.dsp.kernels.column_range` slices a signal."""
        per = max(1, self.frames // columns)
        count = self.frames // per
        out = np.ones(count, dtype=np.float32)
        for s, g in zip(self.starts, self.gains):
            stop = min(s + g.size, count * per)
            if stop <= s:
                continue
            first = s // per
            # the stretch cut at the slices' borders, each piece's minimum taken at once
            cuts = np.arange((first + 1) * per, stop, per) - s
            lows = np.minimum.reduceat(g[:stop - s], np.concatenate(([0], cuts)))
            np.minimum(out[first:first + lows.size], lows, out=out[first:first + lows.size])
        return out


@dataclass(frozen=True)
class Master:
    """The finished stereo master and what was measured on it."""

    audio: np.ndarray  # (2, frames) float32
    sample_rate: int
    preset: str
    measurements: dict
    short_term_lufs: np.ndarray   # 3 s loudness every 100 ms
    limiter_gain: SpanGain        # per frame of the chain (before any up-sampling), linear
