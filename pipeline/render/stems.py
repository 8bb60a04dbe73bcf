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
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from pipeline.dsp import kernels
from pipeline.dsp.audio import BLOCK_FRAMES
from pipeline.files import LITTLE_ENDIAN, AudioOut, atomic_path, for_output
from pipeline.errors import RenderError
from pipeline.model import OWN_PROGRAM, Performance, Stem, Stems, Track, Voice
from pipeline.paths import slugify
from pipeline.dsp.fluidsynth import FLUID_BLOCK_FRAMES, Synth
from pipeline.render.attack import Timing, written_timing
from pipeline.render.preset_holder import PresetHolder, preset_key, program_change
from pipeline.render.vibrato import PartVibrato

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
_END = object()  # a synth's last item in a StemFeed


@dataclass(frozen=True)
class _Group:
    tracks: tuple[int, ...]  # indexes into performance.tracks


def render(performance: Performance, voices: tuple[Voice, ...], *, stems_dir: Path,
           sample_rate: int = 48000, timing: Timing | None = None,
           vibrato: tuple[PartVibrato, ...] | None = None, workers: int | None = None,
           progress: ProgressFn | None = None, feed: StemFeed | None = None) -> Stems:
    """Synthesise every track to ``stems_dir/NN-<part>.wav`` (float32 stereo, equal length).

    Parameters
    ----------
    performance : the notes to play (ticks on a tempo map).
    voices : one per track, from the assign stage.
    timing : when each event sounds in the stems (:mod:`pipeline.render.attack`: the
        attack compensation); the written times when omitted.
    vibrato : per track, the pitch-wheel moves of an added vibrato
        (:mod:`pipeline.render.vibrato`); none when omitted.
    stems_dir : folder for the stem files.
    sample_rate : Hz, 8000–96000.
    workers : threads (synths) to run at once; default one per core.
    progress : called with the fraction done, 0–1.
    feed : also hand every block to a mixer as it is rendered (see :class:`StemFeed`).
    """
    if len(voices) != len(performance.tracks):
        raise RenderError("render: one voice per track is needed")
    if not 8000 <= sample_rate <= 96000:
        raise RenderError(f"sample rate {sample_rate} Hz is out of range (8000–96000)")
    stems_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    timing = timing or written_timing(performance)
    groups = _groups(performance.tracks, workers)
    named = stem_files(performance, stems_dir)
    paths = [stem.path for stem in named]
    # set when the caller is interrupted (or the feed's mixer fails): the synths stop at once
    cancel = feed.cancelled if feed is not None else threading.Event()
    expected = max(1, int((timing.lead_in_s + performance.duration_s + 1.0) * sample_rate))
    done = np.zeros(len(groups), dtype=np.int64)

    def report(g: int, frames: int) -> None:
        done[g] = frames
        if progress:
            progress(min(1.0, float(done.sum()) / (expected * len(groups))))

    # a stem appears under its own name only once cut to length (removed if the render fails)
    with ExitStack() as finished:
        partial = [finished.enter_context(atomic_path(p)) for p in paths]

        def run(g: int) -> tuple[int, int]:
            streamed = {} if feed is None else {"send": lambda *item: feed.put(g, *item),
                                                "spare": lambda: feed.spare(g)}
            return _render_group(performance, voices, timing, vibrato, groups[g].tracks,
                                 partial, sample_rate, lambda f: report(g, f), cancel, **streamed)

        if feed is not None:
            feed.start([g.tracks for g in groups])
        with PresetHolder(sample_rate) as changes, \
                ThreadPoolExecutor(max_workers=min(workers, len(groups))) as pool:
            changes.hold(preset_changes(performance, voices))
            try:
                results = list(pool.map(run, range(len(groups))))
            except BaseException as exc:
                cancel.set()
                if feed is not None:
                    feed.fail(exc)
                raise
        frames = stem_length(max(r[1] for r in results), sample_rate)
        for tmp in partial:
            _set_length(tmp, frames)
    if progress:
        progress(1.0)
    return Stems(sample_rate, frames, named, lead_in_s=timing.lead_in_s)


def stem_files(performance: Performance, stems_dir: Path) -> tuple[Stem, ...]:
    """Each track's stem and the file it is written to, ``NN-<part>.wav``."""
    return tuple(Stem(i, t.name, stems_dir / f"{i + 1:02d}-{slugify(t.name)}.wav")
                 for i, t in enumerate(performance.tracks))


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


def _events(performance: Performance, timing: Timing, vibrato, track_indexes,
            sample_rate: int) -> np.ndarray:
    """All events of a synth's tracks as rows ``(frame, kind, channel, a, b)``, in play order,
    at the times ``timing`` gives them.

    ``frame`` is the FluidSynth block boundary nearest the event's exact sample time, so no
    event is more than half a block (32 frames, 0.7 ms at 44.1 kHz) from where it belongs.
    """
    rows = []
    for channel, ti in enumerate(track_indexes):
        track, times = performance.tracks[ti], timing.parts[ti]
        if track.notes:
            notes = np.array([(n.pitch, n.velocity) for n in track.notes], dtype=np.int64)
            k = len(notes)
            ch = np.full(k, channel)
            rows.append(np.column_stack((times.on_s, np.full(k, NOTE_ON), ch, notes[:, 0],
                                         notes[:, 1])))
            rows.append(np.column_stack((times.off_s, np.full(k, NOTE_OFF), ch, notes[:, 0],
                                         np.zeros(k))))
        if track.controls:
            cc = np.array([(_KINDS[c.kind], c.number, c.value) for c in track.controls],
                          dtype=np.int64)
            rows.append(np.column_stack((times.control_s, cc[:, 0], np.full(len(cc), channel),
                                         cc[:, 1], cc[:, 2])))
        if vibrato is not None and vibrato[ti].times_s.size:
            wheel = vibrato[ti]
            k = wheel.times_s.size
            rows.append(np.column_stack((wheel.times_s, np.full(k, BEND), np.full(k, channel),
                                         np.zeros(k), wheel.values)))
    if not rows:
        return np.zeros((0, 5), dtype=np.int64)
    ev = np.concatenate(rows)
    frames = np.rint(ev[:, 0] * sample_rate / FLUID_BLOCK_FRAMES) * FLUID_BLOCK_FRAMES
    out = np.column_stack((frames, ev[:, 1:])).astype(np.int64)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def _render_group(performance: Performance, voices, timing: Timing, vibrato, track_indexes,
                  paths, sample_rate: int, progress: ProgressFn, cancel: threading.Event,
                  send: Callable | None = None,
                  spare: Callable[[], np.ndarray | None] = lambda: None) -> tuple[int, int]:
    """Render one synth's tracks; returns ``(frames written, last audible frame)``; stops
    (raising :class:`RenderError`) when ``cancel`` is set. ``send(block, frames, last)``:
    each block (all the synth's channels, a full block's width; None: silent) is handed on
    as well, then ``send(_END, written, last)``; ``send`` tells whether it keeps the block
    (else its memory is used again). ``spare()``: a zeroed block that ``send`` kept and has
    let go of since, to fill next (None: new memory is taken)."""
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
            nonlocal buf
            used = state["pos"]
            block = buf[:, :used]
            loud = kernels.last_above(block, silence)
            if loud >= 0:
                state["last"] = state["written"] + loud + 1
            if cancel.is_set():
                raise RenderError("render cancelled")
            writers.write(block)
            state["written"] += used
            state["pos"] = 0
            handed = send is not None and used and kernels.any_sound(block)
            kept = send is not None and used and send(buf if handed else None, used,
                                                      state["last"])
            if handed and kept:  # the block is the feed's now: fill one it let go of
                recycled = spare()
                buf = np.zeros_like(buf) if recycled is None else recycled
            else:
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
        events = _events(performance, timing, vibrato, track_indexes, sample_rate)
        held = False
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
                if not held:  # by now the holder has decoded them: no wait at the start
                    _hold_programs(synth, events, programs, first_spare=n)
                    held = True
                program_change(synth, channel, programs[channel], a)
        tail = 0
        while synth.active_voices() > 0 and tail < max_tail:
            advance(TAIL_CHUNK_FRAMES)
            tail += TAIL_CHUNK_FRAMES
        advance(TAIL_CHUNK_FRAMES)  # one quiet chunk past the last voice, for the margin
        flush()
        if send is not None:
            send(_END, state["written"], state["last"])
        return state["written"], state["last"]


def stem_length(last_audible: int, sample_rate: int) -> int:
    """The stems' length: their last audible frame and a short margin."""
    return last_audible + int(TAIL_MARGIN_S * sample_rate)


class StemFeed:
    """The stems' blocks handed from the synth threads to a mixer while they are rendered
    (:func:`render` with ``feed=``, :func:`pipeline.mix.mixer.mix` given the feed instead of the
    files), so that the mix runs beside the synthesis and nothing is read back from disk: the
    mixer's :class:`~pipeline.model.StemStream`.

    Each synth's queue holds a few blocks: a mixer that falls behind holds the synths back.
    Every block is a whole ``BLOCK_FRAMES`` wide (a synth's last one zero-padded), so the rows
    of blocks lie on one grid whichever synth ends first. The stems' length is known only when
    every synth has finished; a block lying wholly past the last frame heard so far waits
    until a later block is heard or the render ends. A block of a synth's channels that is
    exactly silent travels as None. A mixer that asks (``blocks(prepare)``) has its work on
    each stem's block done by the synth thread that made it, while the block is in the
    processor's cache and beside the other synths, rather than after every synth has made
    its block; only the blocks at the stems' end, whose frames past it must not count, are
    left to the mixer's thread."""

    DEPTH = 3

    def __init__(self, stems: tuple[Stem, ...], sample_rate: int, max_frames: int):
        self.stems = stems
        self.sample_rate = sample_rate
        self.max_frames = max_frames  # the most frames the stems can have (see max_stem_frames)
        self.frames: int | None = None  # the stems' length, once the render has ended
        self.cancelled = threading.Event()
        self._started = threading.Event()
        self._consuming = threading.Event()  # blocks() has been called: its prepare is known
        self._prepare: Callable | None = None
        self._groups: list[tuple[int, ...]] = []
        self._queues: list[queue.Queue] = []
        self._error: BaseException | None = None
        # for blocks prepared where they are made: the last frame any synth has heard, and
        # per synth where its blocks so far end, and those not yet known to be in the stems
        self._heard = 0
        self._heard_lock = threading.Lock()
        self._ends: list[int] = []
        self._held: list[list] = []
        self._spare: list[list[np.ndarray]] = []  # per synth: its blocks let go of, to fill again

    def start(self, groups: list[tuple[int, ...]]) -> None:
        self._groups = groups
        self._queues = [queue.Queue(self.DEPTH) for _ in groups]
        self._ends = [0] * len(groups)
        self._held = [[] for _ in groups]
        self._spare = [[] for _ in groups]
        self._started.set()

    def put(self, group: int, block, frames: int, last: int) -> bool:
        """A synth's next block ((2 × its channels, ``BLOCK_FRAMES``) float32; None: silent;
        ``_END``: no more), the frames of it rendered and the last audible frame so far (the
        synth thread's side). Returns whether the feed keeps the block (else the synth may
        reuse its memory at once).

        When the mixer asked (see :meth:`blocks`), a block is prepared here once it is known
        to lie wholly in the stems (before the last frame any synth has heard, and the
        margin): the blocks after it wait here until then, and those still waiting when the
        synth ends are prepared by the mixer, for the frames the stems keep of them, so that
        nothing past the stems' end is ever prepared."""
        while not self._consuming.wait(0.1):
            if self.cancelled.is_set():
                raise RenderError("render cancelled")
        if self._prepare is None or block is _END:
            if block is _END:
                for b, f, heard_then in self._held[group]:  # prepared where they are cut
                    self._enqueue(group, (b, f, heard_then, False))
                self._held[group].clear()
            self._enqueue(group, (block, frames, last, False))
            return self._prepare is None
        with self._heard_lock:
            self._heard = heard = max(self._heard, last)
        self._ends[group] += BLOCK_FRAMES
        waiting = self._held[group]
        waiting.append((block, frames, last))
        if not self._in_stems(self._ends[group], heard):
            return True  # not known yet to lie in the stems
        tracks = self._groups[group]
        for b, f, heard_then in waiting:  # in order: each before it lies in them too
            self._enqueue(group, ([self._prepare(i, None if b is None else b[2 * c:2 * c + 2],
                                                 BLOCK_FRAMES) for c, i in enumerate(tracks)],
                                  f, heard_then, True))
        # the blocks held before this one, prepared, are the synth's to fill again (this one
        # it keeps: it is not the feed's)
        self._spare[group].extend(b for b, _, _ in waiting[:-1] if b is not None)
        waiting.clear()
        return False

    def spare(self, group: int) -> np.ndarray | None:
        """A block of synth ``group``'s that the feed has let go of, zeroed, for it to fill
        again rather than take new memory (its own thread's side); None when there is none."""
        spare = self._spare[group]
        if not spare:
            return None
        block = spare.pop()
        block[:] = 0.0
        return block

    def _in_stems(self, end: int, heard: int) -> bool:
        """Whether frames up to ``end`` are known to be in the stems once some synth has heard
        frame ``heard``: the stems run to the last frame heard and a margin."""
        return end <= stem_length(heard, self.sample_rate)

    def _enqueue(self, group: int, item: tuple) -> None:
        q = self._queues[group]
        while not self.cancelled.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise RenderError("render cancelled")

    def fail(self, exc: BaseException) -> None:
        """The render has failed: the mixer stops with ``exc``."""
        self._error = exc
        self._started.set()

    def stop(self) -> None:
        """The mixer has failed or been interrupted: the synths stop."""
        self.cancelled.set()

    def _get(self, q: queue.Queue | None):
        """The next item of ``q`` (None: wait for the render to start), raising the render's
        error if it fails meanwhile."""
        while True:
            if self._error is not None:
                raise self._error
            if q is None:
                if self._started.wait(0.1) and self._error is None:
                    return None
                continue
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def blocks(self, prepare: Callable | None = None):
        """Every block of the stems as cut to their length, in order: ``(start, n, parts)``
        where ``parts[i]`` is stem ``i``'s (2, n) float32 view, or None where it is silent.
        When the last has been given, :attr:`frames` is the stems' length.

        With ``prepare(i, audio, width)``, ``parts[i]`` is what it returned for stem ``i``'s
        block instead (``audio``: (2, width) float32 or None where silent): it is called once
        for every stem and block the stems keep, in order for each stem, on the synth thread
        that made the block while it is known to lie wholly in the stems (``width``:
        ``BLOCK_FRAMES``), else on this one (the blocks at the stems' end and after a synth's
        last: ``width`` is the ``n`` frames kept; take the first ``n`` of what it made)."""
        self._prepare = prepare
        self._consuming.set()
        self._get(None)
        ended = [False] * len(self._groups)
        waiting: list[tuple[int, int, list]] = []  # rendered, not yet known to be in the stems
        start = last = 0
        while not all(ended):
            row, width = [], 0
            for g, q in enumerate(self._queues):
                entry = None  # (block, prepared), None once the synth has ended
                if not ended[g]:
                    block, frames, heard, prepared = self._get(q)
                    last = max(last, heard)
                    if block is _END:
                        ended[g] = True
                    else:
                        entry, width = (block, prepared), BLOCK_FRAMES
                row.append(entry)
            if width:
                waiting.append((start, width, row))
                start += width
            while waiting and self._in_stems(waiting[0][0] + waiting[0][1], last):
                yield self._parts(*waiting.pop(0))
        self.frames = stem_length(last, self.sample_rate)
        for at, width, row in waiting:
            if at < self.frames:
                yield self._parts(at, min(width, self.frames - at), row)
        while start < self.frames:  # past every synth's last block (a margin longer than it)
            n = min(BLOCK_FRAMES, self.frames - start)
            yield self._parts(start, n, [None] * len(self._groups))
            start += n

    def _parts(self, start: int, n: int, row: list) -> tuple[int, int, list]:
        """A row of the synths' ``(block, prepared)`` entries (None: the synth has ended) as
        the stems' parts, cut to ``n`` frames (prepared, where asked: those not prepared where
        they were made are prepared here, for those ``n`` frames)."""
        parts: list = [None] * len(self.stems)
        for tracks, entry in zip(self._groups, row):
            block, prepared = entry if entry is not None else (None, False)
            for c, i in enumerate(tracks):
                audio = None if block is None or prepared else block[2 * c:2 * c + 2, :n]
                if prepared:
                    parts[i] = block[c]
                elif self._prepare is not None:
                    parts[i] = self._prepare(i, audio, n)
                else:
                    parts[i] = audio
        return start, n, parts


def max_stem_frames(performance: Performance, sample_rate: int, lead_in_s: float = 0.0) -> int:
    """The most frames :func:`render` can make of ``performance`` (after ``lead_in_s`` of
    silence): to its last event, the longest release tail and the quiet chunk after it, in
    whole blocks."""
    end = int(np.ceil((lead_in_s + performance.duration_s) * sample_rate)) + FLUID_BLOCK_FRAMES
    frames = stem_length(end + int(MAX_TAIL_S * sample_rate) + 3 * TAIL_CHUNK_FRAMES,
                         sample_rate)
    return -(-frames // BLOCK_FRAMES) * BLOCK_FRAMES


def preset_changes(performance: Performance, voices: tuple[Voice, ...]) -> list[tuple[Voice, int]]:
    """The presets the parts change to (pizz., arco…) other than the parts' first ones, which
    the render's synths load themselves at their start."""
    first = {preset_key(v, v.program) for v in voices}
    wanted = []
    for track, voice in zip(performance.tracks, voices):
        for c in track.controls:
            if c.kind == "program_change":
                program = voice.program if c.number == OWN_PROGRAM else c.number
                if preset_key(voice, program) not in first:
                    wanted.append((voice, program))
    return wanted


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
        program_change(synth, channel, voices[owner], program, quiet=True)


class _StemWriters:
    """Float32 stereo WAV writers, one per channel of a synth (on the hidden paths
    :func:`render` renames into place)."""

    def __init__(self, paths: list[Path], sample_rate: int):
        self.paths = paths
        self.sample_rate = sample_rate

    def __enter__(self) -> "_StemWriters":
        self.files = [AudioOut(p, self.sample_rate, 2, subtype="FLOAT") for p in self.paths]
        self.interleaved = np.empty((BLOCK_FRAMES, 2), dtype=np.float32)  # filled per stem
        return self

    def write(self, block: np.ndarray) -> None:
        for c, f in enumerate(self.files):
            # interleaved here and handed over as the file's bytes: libsndfile's own float
            # write copies and converts what is already in its format
            if LITTLE_ENDIAN:
                f.write_raw(kernels.interleave(block[2 * c:2 * c + 2], self.interleaved))
            else:
                f.write(block[2 * c:2 * c + 2].T)

    def __exit__(self, *exc) -> None:
        for f in self.files:
            f.close()


def _set_length(path: Path, frames: int) -> None:
    """Cut or zero-pad a stem to exactly ``frames`` frames."""
    with for_output(sf.SoundFile(str(path), "r+")) as f:
        if f.frames > frames:
            f.truncate(frames)
        elif f.frames < frames:
            f.seek(0, sf.SEEK_END)
            missing = frames - f.frames
            while missing > 0:
                step = min(missing, BLOCK_FRAMES)
                f.write(np.zeros((step, 2), dtype=np.float32))
                missing -= step
