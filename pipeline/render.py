"""Render stage: the performance is synthesised by FluidSynth into one dry stereo stem per track.

All stems of a synth come from one synthesis pass: each track has its own MIDI channel and
``fluid_synth_process`` writes every channel to its own stereo pair. Tracks are spread over
several synths (at most 16 channels each, at least one synth per core) that run on separate
threads; ctypes releases the GIL while FluidSynth works. Stems are streamed to float32 WAV files
block by block, so memory does not grow with the length or the number of parts.
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from . import kernels
from .audio import BLOCK_FRAMES, LITTLE_ENDIAN, atomic_path, without_timestamp, write_raw
from .errors import RenderError, SoundfontError
from .model import OWN_PROGRAM, Performance, Stem, Stems, Track, Voice
from .paths import slugify
from .synth import DRUM_BANK, FLUID_BLOCK_FRAMES, Synth

log = logging.getLogger(__name__)

MAX_CHANNELS_PER_SYNTH = 16
#: Release tails are rendered until every voice has stopped, at most this long.
MAX_TAIL_S = 30.0
#: A tail is cut where it falls below this level (far under audibility even after mastering gain).
SILENCE_DBFS = -90.0
TAIL_MARGIN_S = 0.05
TAIL_CHUNK_FRAMES = 4096

# event kinds, in the order they are applied when several fall on the same frame
PROGRAM, CONTROL, BEND, NOTE_OFF, NOTE_ON = range(5)
_KINDS = {"program_change": PROGRAM, "control_change": CONTROL, "pitchwheel": BEND}

ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class _Group:
    tracks: tuple[int, ...]  # indexes into performance.tracks


def render(performance: Performance, voices: tuple[Voice, ...], *, stems_dir: Path,
           sample_rate: int = 48000, workers: int | None = None,
           progress: ProgressFn | None = None) -> Stems:
    """Synthesise every track to ``stems_dir/NN-<part>.wav`` (float32 stereo, equal length).

    Parameters
    ----------
    performance : the notes to play (ticks on a tempo map).
    voices : one per track, from the assign stage.
    stems_dir : folder for the stem files.
    sample_rate : Hz, 8000–96000.
    workers : threads (synths) to run at once; default one per core.
    progress : called with the fraction done, 0–1.
    """
    if len(voices) != len(performance.tracks):
        raise RenderError("render: one voice per track is needed")
    if not 8000 <= sample_rate <= 96000:
        raise RenderError(f"sample rate {sample_rate} Hz is out of range (8000–96000)")
    stems_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    groups = _groups(performance.tracks, workers)
    paths = [stems_dir / f"{i + 1:02d}-{slugify(t.name)}.wav" for i, t in enumerate(performance.tracks)]
    cancel = threading.Event()  # set when the caller is interrupted: the synths stop at once
    expected = max(1, int((performance.duration_s + 1.0) * sample_rate))
    done = np.zeros(len(groups), dtype=np.int64)

    def report(g: int, frames: int) -> None:
        done[g] = frames
        if progress:
            progress(min(1.0, float(done.sum()) / (expected * len(groups))))

    # a stem appears under its own name only once cut to length (removed if the render fails)
    with ExitStack() as finished:
        partial = [finished.enter_context(atomic_path(p)) for p in paths]

        def run(g: int) -> tuple[int, int]:
            return _render_group(performance, voices, groups[g].tracks, partial, sample_rate,
                                 lambda f: report(g, f), cancel)

        with ThreadPoolExecutor(max_workers=min(workers, len(groups))) as pool:
            try:
                results = list(pool.map(run, range(len(groups))))
            except BaseException:
                cancel.set()
                raise
        last_audible = max(r[1] for r in results)
        frames = last_audible + int(TAIL_MARGIN_S * sample_rate)
        for tmp in partial:
            _set_length(tmp, frames)
    if progress:
        progress(1.0)
    return Stems(sample_rate, frames, tuple(Stem(i, t.name, p) for i, (t, p)
                                            in enumerate(zip(performance.tracks, paths))))


def _groups(tracks: tuple[Track, ...], workers: int) -> list[_Group]:
    """Spread tracks over synths, balancing the note count."""
    n = len(tracks)
    count = min(n, max(-(-n // MAX_CHANNELS_PER_SYNTH), workers))
    members: list[list[int]] = [[] for _ in range(count)]
    load = [0] * count
    for i in sorted(range(n), key=lambda i: -len(tracks[i].notes)):
        g = min((g for g in range(count) if len(members[g]) < MAX_CHANNELS_PER_SYNTH),
                key=lambda g: load[g])
        members[g].append(i)
        load[g] += len(tracks[i].notes)
    return [_Group(tuple(sorted(m))) for m in members if m]


def _events(performance: Performance, track_indexes, sample_rate: int) -> np.ndarray:
    """All events of a synth's tracks as rows ``(frame, kind, channel, a, b)``, in play order.

    ``frame`` is the FluidSynth block boundary nearest the event's exact sample time, so no
    event is more than half a block (32 frames, 0.7 ms at 44.1 kHz) from where it belongs.
    """
    rows = []
    tm = performance.tempo_map
    for channel, ti in enumerate(track_indexes):
        track = performance.tracks[ti]
        if track.notes:
            notes = np.array([(n.on, n.off, n.pitch, n.velocity) for n in track.notes], dtype=np.int64)
            k = len(notes)
            ch = np.full(k, channel)
            rows.append(np.column_stack((tm.seconds(notes[:, 0]), np.full(k, NOTE_ON), ch,
                                         notes[:, 2], notes[:, 3])))
            rows.append(np.column_stack((tm.seconds(notes[:, 1]), np.full(k, NOTE_OFF), ch,
                                         notes[:, 2], np.zeros(k))))
        if track.controls:  # one tempo-map lookup for all of them, not one per event
            cc = np.array([(c.tick, _KINDS[c.kind], c.number, c.value) for c in track.controls],
                          dtype=np.int64)
            rows.append(np.column_stack((tm.seconds(cc[:, 0]), cc[:, 1], np.full(len(cc), channel),
                                         cc[:, 2], cc[:, 3])))
    if not rows:
        return np.zeros((0, 5), dtype=np.int64)
    ev = np.concatenate(rows)
    frames = np.rint(ev[:, 0] * sample_rate / FLUID_BLOCK_FRAMES) * FLUID_BLOCK_FRAMES
    out = np.column_stack((frames, ev[:, 1:])).astype(np.int64)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def _render_group(performance: Performance, voices, track_indexes, paths, sample_rate: int,
                  progress: ProgressFn, cancel: threading.Event) -> tuple[int, int]:
    """Render one synth's tracks; returns ``(frames written, last audible frame)``; stops
    (raising :class:`RenderError`) when ``cancel`` is set."""
    n = len(track_indexes)
    silence = 10.0 ** (SILENCE_DBFS / 20.0)
    max_tail = int(MAX_TAIL_S * sample_rate)
    with Synth(sample_rate=sample_rate, channels=n) as synth, _StemWriters(
            [paths[i] for i in track_indexes], sample_rate) as writers:
        for channel, ti in enumerate(track_indexes):
            v = voices[ti]
            synth.select(channel, v.soundfont, v.bank, v.program, drum=v.is_percussion)
        buf = np.zeros((2 * n, BLOCK_FRAMES), dtype=np.float32)
        state = {"pos": 0, "written": 0, "last": 0}

        def flush() -> None:
            used = state["pos"]
            block = buf[:, :used]
            loud = np.flatnonzero(np.abs(block).max(axis=0) > silence)
            if loud.size:
                state["last"] = state["written"] + int(loud[-1]) + 1
            if cancel.is_set():
                raise RenderError("render cancelled")
            writers.write(block)
            state["written"] += used
            state["pos"] = 0
            buf[:, :used] = 0.0
            progress(state["written"])

        def advance(frames: int) -> None:
            while frames > 0:
                step = min(frames, BLOCK_FRAMES - state["pos"])
                synth.process_into(buf, state["pos"], step)
                state["pos"] += step
                frames -= step
                if state["pos"] == BLOCK_FRAMES:
                    flush()

        cursor = 0
        programs = {ch: voices[ti] for ch, ti in enumerate(track_indexes)}
        events = _events(performance, track_indexes, sample_rate)
        _hold_programs(synth, events, programs, first_spare=n)
        for frame, kind, channel, a, b in events.tolist():
            if frame > cursor:
                advance(frame - cursor)
                cursor = frame
            if kind == NOTE_ON:
                synth.noteon(channel, a, b)
            elif kind == NOTE_OFF:
                synth.noteoff(channel, a)
            elif kind == CONTROL:
                if a not in (0, 32):  # bank select is decided by the assign stage
                    synth.cc(channel, a, b)
            elif kind == BEND:
                synth.pitch_bend(channel, b)
            elif kind == PROGRAM:
                _program_change(synth, channel, programs[channel], a)
        tail = 0
        while synth.active_voices() > 0 and tail < max_tail:
            advance(TAIL_CHUNK_FRAMES)
            tail += TAIL_CHUNK_FRAMES
        advance(TAIL_CHUNK_FRAMES)  # one quiet chunk past the last voice, for the margin
        flush()
        return state["written"], state["last"]


def _hold_programs(synth: Synth, events: np.ndarray, voices: dict[int, Voice], *,
                   first_spare: int) -> None:
    """Select every program the channels will change to on a spare MIDI channel that never
    plays. FluidSynth loads a preset's samples when it is selected and drops them when no
    channel has it (dynamic sample loading: a compressed soundfont is decoded preset by
    preset), so a violin going pizz. and back would decode its samples at every change."""
    changes = events[events[:, 1] == PROGRAM]
    wanted = sorted({(int(ch), int(program)) for ch, program in changes[:, 2:4]})
    spare = range(first_spare, synth.midi_channels)
    for channel, (owner, program) in zip(spare, wanted):
        _program_change(synth, channel, voices[owner], program, quiet=True)


def _program_change(synth: Synth, channel: int, voice: Voice, program: int, *,
                    quiet: bool = False) -> None:
    """Switch a channel to ``program`` (:data:`OWN_PROGRAM`: the voice's own) in the voice's
    soundfont and bank, else in its bank 0 (a variation bank, such as MuseScore General's
    expressive bank 17, lacks most programs); if neither has it, the channel plays on."""
    if program == OWN_PROGRAM:
        program = voice.program
    bank = DRUM_BANK if voice.is_percussion else voice.bank
    for b in (bank, 0) if bank not in (0, DRUM_BANK) else (bank,):
        try:
            synth.select(channel, voice.soundfont, b, program, drum=voice.is_percussion)
            return
        except SoundfontError:
            continue
    if not quiet:
        log.warning("program change to %d: not in %s; the part plays on in its current voice",
                    program, voice.soundfont.name)


class _StemWriters:
    """Float32 stereo WAV writers, one per channel of a synth (on the hidden paths
    :func:`render` renames into place)."""

    def __init__(self, paths: list[Path], sample_rate: int):
        self.paths = paths
        self.sample_rate = sample_rate

    def __enter__(self) -> "_StemWriters":
        self.files = [without_timestamp(sf.SoundFile(str(p), "w", samplerate=self.sample_rate,
                                                     channels=2, subtype="FLOAT", format="WAV"))
                      for p in self.paths]
        return self

    def write(self, block: np.ndarray) -> None:
        for c, f in enumerate(self.files):
            # interleaved here and handed over as the file's bytes: libsndfile's own float
            # write copies and converts what is already in its format
            if LITTLE_ENDIAN:
                write_raw(f, kernels.interleave(block[2 * c:2 * c + 2]))
            else:
                f.write(block[2 * c:2 * c + 2].T)

    def __exit__(self, *exc) -> None:
        for f in self.files:
            f.close()


def _set_length(path: Path, frames: int) -> None:
    """Cut or zero-pad a stem to exactly ``frames`` frames."""
    with sf.SoundFile(str(path), "r+") as f:
        if f.frames > frames:
            f.truncate(frames)
        elif f.frames < frames:
            f.seek(0, sf.SEEK_END)
            missing = frames - f.frames
            while missing > 0:
                step = min(missing, BLOCK_FRAMES)
                f.write(np.zeros((step, 2), dtype=np.float32))
                missing -= step
