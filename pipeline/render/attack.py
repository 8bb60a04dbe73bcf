"""Attack compensation: every note starts early by the time its voice takes to be heard, so that
it is heard on its beat, as players start the bow or the breath ahead of it.

A sample reaches its level at its own pace: a piano's in a few milliseconds, a bowed string's
or a choir's in a tenth of a second or more (the README's measurement notes have the figures).
Played as written, the strings of a piano trio trail the piano on every note.

Each voice (soundfont preset) is measured once per key and velocity step: one note held for
``ENVELOPE_S`` and its level every ``HOP_S``, kept beside the balance calibration
(:mod:`pipeline.render.voice_cache`, the same invalidation: a changed soundfont measures again).
A note's delay is read from that level curve over the note's own length (a short note of a
swelling sample peaks sooner than a long one), and the note, its end and the controls that
prepare it move that much earlier. It belongs to the voices, not to the music:
``performance.mid`` keeps the written times.

Three rules keep the line a line. A connected line (slurred or tenuto: the perform stage gives
every other note a small gap) is played legato: each note sounds to its written end and
``legato_hold_ms`` beyond (``data/attack.toml``, with the other rules' figures), under the
next note's early start, so the two cross-fade instead of
the line dipping at every change (a sample re-attacked from silence dips several dB). Any other
note never starts before the note it follows in its part has ended: that note ends a little
earlier instead (by the difference of their delays, a few milliseconds as a rule), unless that
would take more than half its length, and then the later note gives up that part of its head
start; a key struck again never overlaps itself (its note-off would end both). And nothing
moves before the piece's start: every stem starts with the same silence instead
(``lead_in_s``), so the stems stay aligned.
"""
from __future__ import annotations

import base64
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from pipeline.dsp.fluidsynth import Synth
from pipeline.files import read_cache, write_cache
from pipeline.errors import PipelineError
from pipeline.model import OWN_PROGRAM, AttackApplied, Performance, Track, Voice
from pipeline.render import voice_cache
from pipeline.render.preset_holder import PresetHolder, preset_key, program_change
from pipeline.settings.validation import number, package_toml

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 2: every note measured alone (no fading voice under it); 3: packed
ENVELOPE_S = 1.0      # each measured note is held this long; longer notes read its whole curve
HOP_S = 0.005         # the level curve's step
WINDOW_S = 0.010      # the level: mean power over a window this long, centred on each step
VELOCITY_STEP = 16    # velocities measured at the middle of steps this wide
SILENT_DB = -200.0
WORKERS = 2           # synths measuring side by side
WHERE = "data/attack.toml"


@dataclass(frozen=True)
class Rules:
    """The musical rules of ``data/attack.toml`` (see its comments)."""

    heard_db: float
    max_shift_s: float
    min_kept: float
    legato_gap_s: float
    legato_hold_s: float


@functools.lru_cache(maxsize=1)
def load_rules() -> Rules:
    """Read and check ``data/attack.toml``."""
    data = package_toml(WHERE)
    return Rules(heard_db=number(data, "heard_db", WHERE, PipelineError, -20.0, -1.0),
                 max_shift_s=number(data, "max_shift_ms", WHERE, PipelineError, 0.0, 1000.0) / 1e3,
                 min_kept=number(data, "min_kept", WHERE, PipelineError, 0.0, 1.0),
                 legato_gap_s=number(data, "legato_gap_ms", WHERE, PipelineError, 0.0, 50.0) / 1e3,
                 legato_hold_s=number(data, "legato_hold_ms", WHERE, PipelineError,
                                      0.0, 200.0) / 1e3)


@dataclass(frozen=True)
class PartTiming:
    """When a part's events sound in its stem (seconds from the stem's start): its notes'
    starts and ends (in the track's order) and its controls'; the delay each note was measured
    to have, and how much earlier than written it starts (less, where the rules held it back)."""

    on_s: np.ndarray
    off_s: np.ndarray
    control_s: np.ndarray
    delay_s: np.ndarray
    shift_s: np.ndarray


@dataclass(frozen=True)
class Timing:
    """The render's times of every event (see :class:`PartTiming`), ``lead_in_s`` of silence
    before the score's start in every stem."""

    lead_in_s: float
    parts: tuple[PartTiming, ...]
    compensated: bool

    def summary(self) -> tuple[AttackApplied | None, ...]:
        """Per part, the head start given (median and largest, ms) and the notes that could
        not take all of theirs; None for a part without notes or when not compensated."""
        out = []
        for p in self.parts:
            if not self.compensated or p.on_s.size == 0:
                out.append(None)
                continue
            given = p.shift_s * 1000.0
            out.append(AttackApplied(
                median_ms=round(float(np.median(given)), 1), max_ms=round(float(given.max()), 1),
                held_back=int(np.count_nonzero(p.shift_s < p.delay_s - 5e-4))))
        return tuple(out)


def written_timing(performance: Performance) -> Timing:
    """The written times, uncompensated."""
    tm = performance.tempo_map
    parts = []
    for track in performance.tracks:
        on, off = _note_seconds(track, tm)
        parts.append(PartTiming(on, off, _control_seconds(track, tm), np.zeros(on.size),
                                np.zeros(on.size)))
    return Timing(0.0, tuple(parts), False)


def compensated_timing(performance: Performance, voices: tuple[Voice, ...], *,
                       sample_rate: int) -> Timing:
    """Every note started early by its voice's measured delay (see the module)."""
    tm = performance.tempo_map
    seconds = [_note_seconds(track, tm) for track in performance.tracks]
    delays = note_delays(performance, voices, [off - on for on, off in seconds],
                         sample_rate=sample_rate)
    parts = []
    for track, (on, off), delay in zip(performance.tracks, seconds, delays):
        control = _control_seconds(track, tm)
        pitch = np.array([n.pitch for n in track.notes], dtype=np.int64)
        new_on, new_off = _rules(on, off, pitch, on - delay, off - delay)
        parts.append((on, new_on, new_off, _controls(control, on, new_on), delay))
    earliest = min([0.0, *(float(x.min()) for _, a, _, c, _ in parts for x in (a, c) if x.size)])
    lead_in = max(0.0, -earliest)
    timed = tuple(PartTiming(a + lead_in, b + lead_in, c + lead_in, d, written - a)
                  for written, a, b, c, d in parts)
    for track, part in zip(performance.tracks, timed):
        if part.on_s.size:
            log.info("attack: %s starts %.0f ms early (median, up to %.0f)", track.name,
                     1000 * float(np.median(part.shift_s)), 1000 * float(part.shift_s.max()))
    return Timing(lead_in, timed, True)


def _note_seconds(track: Track, tm) -> tuple[np.ndarray, np.ndarray]:
    if not track.notes:
        return np.zeros(0), np.zeros(0)
    ticks = np.array([(n.on, n.off) for n in track.notes], dtype=np.int64)
    return tm.seconds(ticks[:, 0]).astype(np.float64), tm.seconds(ticks[:, 1]).astype(np.float64)


def _control_seconds(track: Track, tm) -> np.ndarray:
    if not track.controls:
        return np.zeros(0)
    return tm.seconds(np.array([c.tick for c in track.controls], dtype=np.int64)).astype(np.float64)


def _rules(on: np.ndarray, off: np.ndarray, pitch: np.ndarray, new_on: np.ndarray,
           new_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A connected line is played legato; otherwise a note never starts before one it follows
    has ended (see the module). A note whose written end touches the next note's start (a
    slurred or tenuto line: the perform stage leaves other notes a gap) sounds to that end,
    under the next note's early start, unless they share a key. Else a note that had ended by
    another's written start ends by its new start, keeping at least ``min_kept`` of its
    length, or the later note starts when it ends."""
    rules = load_rules()
    gap, hold, kept = rules.legato_gap_s, rules.legato_hold_s, rules.min_kept
    by_end = np.argsort(off, kind="stable")
    ends = off[by_end]
    # the notes that ended by each note's written start and may reach past its new one
    lows = np.searchsorted(ends, on - rules.max_shift_s - 1.0, side="left").tolist()
    highs = np.searchsorted(ends, on + 1e-9, side="right").tolist()
    order, by_end = np.argsort(on, kind="stable").tolist(), by_end.tolist()
    on_, off_, key = on.tolist(), off.tolist(), pitch.tolist()
    start, end = new_on.tolist(), new_off.tolist()  # plain floats: a loop over every note
    def joined(j: int, k: int) -> bool:
        """Note ``j`` leads into ``k`` legato: it ends where ``k`` starts, on another key."""
        return key[j] != key[k] and off_[j] > on_[k] - gap

    for k in order:  # legato first: a note held to its end …
        for j in by_end[lows[k]:highs[k]]:
            if j != k and on_[j] < on_[k] and joined(j, k):
                end[j] = max(end[j], off_[j] + hold)
    for k in order:  # … then no note into another that had ended
        for j in by_end[lows[k]:highs[k]]:
            if j == k or on_[j] >= on_[k] or end[j] <= start[k] or joined(j, k):
                continue  # (legato: the overlap is the point)
            if start[k] - start[j] >= kept * (off_[j] - on_[j]):
                end[j] = start[k]
            else:
                start[k] = min(end[j], on_[k])
    start_s = np.array(start)
    return start_s, np.maximum(np.array(end), start_s)


def _controls(control: np.ndarray, on: np.ndarray, new_on: np.ndarray) -> np.ndarray:
    """Each control moves with the note it prepares, the first to start at or after it (the
    last note's, for controls after every note): it stays before that note, and before the
    piece's start only if that note goes there too."""
    if control.size == 0 or on.size == 0:
        return control.copy()
    order = np.argsort(on, kind="stable")
    nxt = order[np.minimum(np.searchsorted(on[order], control - 1e-9, side="left"), on.size - 1)]
    return np.maximum(control - (on[nxt] - new_on[nxt]), np.minimum(0.0, new_on[nxt]))


# ---- measuring ----

def note_delays(performance: Performance, voices: tuple[Voice, ...], lengths_s: list, *,
                sample_rate: int) -> tuple[np.ndarray, ...]:
    """Per track, each note's delay (s) from note-on to heard, by its voice, key, velocity
    and length (``lengths_s``: per track, each note's, in seconds); measured once per voice,
    key and velocity step, then read from the cache."""
    path = voice_cache.cache_file("attack.json")
    cache = read_cache(path)
    wanted: dict[str, tuple[Voice, int, int, int]] = {}
    per_track = []
    for track, voice in zip(performance.tracks, voices):
        keys = []
        if voice is None or not voice.preset_name:  # nothing to measure: played as written
            per_track.append([])
            continue
        prefixes: dict[int, str] = {}  # per program: the voice's part of the key
        for note, program in zip(track.notes, note_programs(track, voice)):
            if program not in prefixes:
                prefixes[program] = _prefix(voice, program)
            v = _velocity_step(note.velocity)
            key = f"{prefixes[program]}|{note.pitch}|{v}|{sample_rate}"
            keys.append(key)
            if key not in cache:
                wanted[key] = (voice, program, note.pitch, v)
        per_track.append(keys)
    if wanted:
        cache.update(_measure(list(wanted.items()), sample_rate))
        write_cache(path, cache, "attack")
    hops = int(round(ENVELOPE_S / HOP_S))
    out = []
    for track, keys, length_s in zip(performance.tracks, per_track, lengths_s):
        if not keys:
            out.append(np.zeros(len(track.notes)))
            continue
        steps = np.clip(np.rint(length_s / HOP_S).astype(np.int64), 2, hops).tolist()
        curves = {key: _unpack(cache[key]) for key in set(keys)}
        delays: dict[tuple[str, int], float] = {}  # most notes share a key and a length
        for key, n in zip(keys, steps):
            if (key, n) not in delays:
                delays[key, n] = delay_s(curves[key], n)
        out.append(np.array([delays[key, n] for key, n in zip(keys, steps)]))
    return tuple(out)


def delay_s(levels_db, steps: int) -> float:
    """When a note whose level curve (dB, every ``HOP_S``) is ``levels_db`` is first heard,
    over its first ``steps`` steps: where it first comes within the rules' ``heard_db`` of
    their peak (0 for a silent note; at most the rules' ``max_shift_ms``)."""
    rules = load_rules()
    curve = np.asarray(levels_db[:steps], dtype=np.float64)
    if curve.size == 0 or curve.max() <= SILENT_DB:
        return 0.0
    first = int(np.argmax(curve >= curve.max() + rules.heard_db))
    return min(rules.max_shift_s, first * HOP_S)


def level_curve(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The level (dB) of ``audio`` (channels, frames), the mean power over ``WINDOW_S``
    centred every ``HOP_S`` from its first frame."""
    power = np.square(audio.astype(np.float64)).sum(axis=0)
    half, hop = int(round(WINDOW_S * sample_rate / 2)), int(round(HOP_S * sample_rate))
    sums = np.concatenate(([0.0], np.cumsum(power)))
    centres = np.arange(0, power.size, hop)
    lo, hi = np.maximum(centres - half, 0), np.minimum(centres + half, power.size)
    mean = (sums[hi] - sums[lo]) / (2 * half)
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(mean), SILENT_DB)


def _measure(wanted: list[tuple[str, tuple[Voice, int, int, int]]],
             sample_rate: int) -> dict[str, str]:
    """Each wanted note held for ``ENVELOPE_S``, alone, dry: its level curve (see
    :func:`_pack`). The presets are measured on ``WORKERS`` synths side by side."""
    groups: dict[tuple, list] = {}
    for key, (voice, program, pitch, velocity) in sorted(wanted, key=lambda kv: kv[0]):
        groups.setdefault(preset_key(voice, program), []).append((key, voice, program, pitch,
                                                                   velocity))
    shares: list[list] = [[] for _ in range(min(WORKERS, len(groups)))]
    for notes in sorted(groups.values(), key=len, reverse=True):  # the largest first
        min(shares, key=len).extend(notes)
    curves: dict[str, str] = {}
    with PresetHolder(sample_rate) as holder, ThreadPoolExecutor(len(shares)) as pool:
        # every preset decoded once, in turn, while the notes of those before it are measured
        holder.hold([(voice, program) for share in shares for _, voice, program, _, _ in share])
        for part in pool.map(lambda share: _measure_share(share, sample_rate), shares):
            curves.update(part)
    return curves


def _measure_share(notes: list, sample_rate: int) -> dict[str, str]:
    frames = int(round(ENVELOPE_S * sample_rate))
    out = np.zeros((2, frames), dtype=np.float32)
    curves = {}
    with Synth(sample_rate=sample_rate, channels=1) as synth:
        selected = None
        for key, voice, program, pitch, velocity in notes:
            if selected != preset_key(voice, program):
                # the voice's own preset first: a program missing from its bank leaves it on
                synth.select(0, voice.soundfont, voice.bank, voice.program,
                             drum=voice.is_percussion)
                if program != voice.program:
                    program_change(synth, 0, voice, program, quiet=True)
                selected = preset_key(voice, program)
            out[:] = 0.0
            synth.noteon(0, pitch, velocity)
            synth.process_into(out, 0, frames)
            curves[key] = _pack(level_curve(out, sample_rate))
            synth.silence(out)
    return curves


def _pack(levels_db: np.ndarray) -> str:
    """A level curve as the cache keeps it: tenths of a dB, 16-bit, base64."""
    tenths = np.clip(np.rint(levels_db * 10.0), -32768, 32767).astype("<i2")
    return base64.b64encode(tenths.tobytes()).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<i2") / 10.0


def _prefix(voice: Voice, program: int) -> str:
    own = voice if program == voice.program else replace(voice, program=program)
    return f"v{CACHE_VERSION}|{voice_cache.voice_key(own)}"


def _velocity_step(velocity: int) -> int:
    return int(min(127, (velocity // VELOCITY_STEP) * VELOCITY_STEP + VELOCITY_STEP // 2))


def note_programs(track: Track, voice: Voice) -> list[int]:
    """The program each note is played with: the voice's, or the last program change at or
    before its start (pizz., arco…)."""
    changes = sorted((c.tick, voice.program if c.number == OWN_PROGRAM else c.number)
                     for c in track.controls if c.kind == "program_change")
    if not changes:
        return [voice.program] * len(track.notes)
    ticks = np.array([t for t, _ in changes])
    at = np.searchsorted(ticks, [n.on for n in track.notes], side="right") - 1
    return [voice.program if i < 0 else changes[i][1] for i in at]
