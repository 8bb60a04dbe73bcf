"""Mix stage: stems become a stereo mix with seating, balance, room and headroom.

Stems are read block by block (they can be longer than memory); only the stereo mix is whole.
Each player sits where the template's seating puts it (:mod:`pipeline.settings.seating`): pan by the
equal-power law on its mid signal (keeping a template-set share of its own stereo spread) and
depth by level, reverb send, pre-delay and high-frequency damping. Its gain is the balance
calibration (mf on every instrument equally loud) plus its seat's and section bus's offsets
(and a level or pan the piece's sidecar sets). A high-pass below the instrument's lowest note
removes rumble it cannot make; a gentle EQ per family and, for the players the template names,
a light compressor shape its tone and steady its level (:mod:`pipeline.mix.stem_tone`). The room is a
generated impulse response applied by overlap-add FFT convolution: one room, as on a console's
reverb send, fed by every player through its own send level and pre-delay. The mix is
gain-staged so its peak sits at ``MIX_PEAK_DBFS``: headroom for mastering, never clipped, never
limited.

The players of a block are processed on several threads (the kernels and libsndfile release the
GIL): while the stems are rendered, on the synth threads that made them (see
:class:`~pipeline.model.StemStream`); a player resting for a whole block costs nothing once its
filters have rung out.

With ``mix_stems_dir`` each player's post-fader contribution (its reverb included) is written
too; those files sum to the mix. They cost one room convolution per player, so they are made
only when asked for.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.fft
import soundfile as sf
from scipy.signal import butter

from pipeline.settings import instruments

from pipeline.dsp import kernels
from pipeline.dsp.audio import (BLOCK_FRAMES, PEAK_BLOCK, crop_in_place, db_to_gain, gain_to_db,
                                peak_blocks, valid_audio)
from pipeline.files import AudioOut, atomic_path, for_output, read_float_frames
from pipeline.settings.config import Template
from pipeline.dsp.loudness import RUNG_OUT, Loudness, LoudnessMeter
from pipeline.model import (IN_MEMORY, REFERENCE_LUFS, AudioBuffers, Mix, StemLevel, Stems,
                            StemStream, Voice)
from pipeline.dsp.rooms import impulse_response
from pipeline.settings.seating import Placement, place
from pipeline.settings.sidecar import PartSettings
from pipeline.mix.stem_tone import Compressor, load_stem_tone

MIX_PEAK_DBFS = -4.5  # inside the −6…−3 dBFS window a mastering engineer expects
SILENCE_DBFS = -90.0
#: Each side's room input hears some of the other side: a room's reverb is diffuse.
ROOM_FEED = np.array([[0.7, 0.3], [0.3, 0.7]], dtype=np.float32)
FRONT_HZ = 20000.0      # no damping in the front row
HIGH_PASS_RATIO = 0.7   # high-pass corner this far under the lowest note's fundamental

ProgressFn = Callable[[float], None]


def pan_matrix(position: float, player_width: float) -> np.ndarray:
    """2×2 matrix taking a stem's (L, R) to its place on the stage.

    The mid signal is panned with the equal-power law (unity at centre); the side signal is
    kept at ``player_width``.
    """
    theta = (position + 1.0) * np.pi / 4.0
    gl, gr = np.sqrt(2.0) * np.cos(theta), np.sqrt(2.0) * np.sin(theta)
    mid = np.array([[gl, gl], [gr, gr]]) * 0.5
    side = np.array([[1.0, -1.0], [-1.0, 1.0]]) * 0.5 * player_width
    return (mid + side).astype(np.float32)


def damping_hz(depth: float, back_hz: float) -> float:
    """Low-pass corner for a player at ``depth``: none in front, ``back_hz`` at the back
    (geometric in between, as air absorption grows with distance)."""
    return float(FRONT_HZ * (back_hz / FRONT_HZ) ** depth)


def placements(stems: Stems, voices: tuple[Voice, ...], template: Template,
               layout: str | None = None) -> list[Placement]:
    """Where each stem's player sits on ``template``'s stage."""
    return place([s.name for s in stems.stems], [v.instrument for v in voices],
                 [v.family for v in voices], seats=template.seating(layout), rules=template.rules,
                 stage_width=template.stage_width, chamber_depth=template.chamber_depth,
                 section_db=template.section_db)


def _filter(voice: Voice, corner: float, sr: int) -> np.ndarray | None:
    """Second-order sections for a player: depth damping at ``corner``, a high-pass under
    its range and its family's EQ."""
    sos = []
    if corner < min(FRONT_HZ, 0.45 * sr) * 0.99:
        sos.append(butter(1, corner, "lowpass", fs=sr, output="sos"))
    family_eq = load_stem_tone().eq_sos(voice.family, sr)
    if family_eq is not None:
        sos.append(family_eq)
    info = instruments.by_name(voice.instrument) if voice.instrument else None
    if info is not None and info.lowest > 0 and not voice.is_percussion:
        hp = HIGH_PASS_RATIO * 440.0 * 2 ** ((info.lowest - 69) / 12)
        if hp > 20.0:
            sos.append(butter(2, hp, "highpass", fs=sr, output="sos"))
    return np.vstack(sos) if sos else None


class _Channel:
    """One player's path: its stem, gain and pan, filters, and its delayed send to the room;
    with meters of the stem as rendered and of the player in the mix (before the room)."""

    def __init__(self, placement: Placement, voice: Voice, template: Template, sr: int,
                 calibration_db: float, reverb: _Reverb | None, level_db: float = 0.0):
        d = template.depth
        self.gain_db = calibration_db + placement.gain_db + d.level_db * placement.depth + level_db
        self.matrix = pan_matrix(placement.pan, template.player_width) * np.float32(
            db_to_gain(self.gain_db))
        self.send_db = template.reverb_send_db + d.send_db * placement.depth
        self.send = np.float32(db_to_gain(self.send_db))
        self.damping_hz = damping_hz(placement.depth, d.damping_hz)
        sections = _filter(voice, self.damping_hz, sr)
        self.sections = 0 if sections is None else len(sections)
        self.sos = kernels.channel_sections(sections)
        tone = load_stem_tone()
        self.eq = [b.as_dict() for b in tone.eq_bands(voice.family)]
        # the threshold sits above this instrument's mf as rendered: the calibration brings
        # that mf to REFERENCE_LUFS, so before the calibration gain it is that much lower
        self.compressor = Compressor(
            tone.compressor, sample_rate=sr,
            threshold_lufs=REFERENCE_LUFS + tone.compressor.threshold_lu - calibration_db) \
            if voice.instrument in template.compress else None
        self.zi = np.zeros((kernels.CHANNEL_SECTIONS, 2, 2))
        # the room's pre-delay, shorter for back rows: they hear the room sooner after their
        # own sound than the front rows do
        self.predelay_ms = max(0.0, template.room.predelay_ms - d.predelay_ms * placement.depth)
        # the send's delay: the pre-delay's frames, carried from one block into the next
        self.delay = round(self.predelay_ms / 1000 * sr)
        self.carried_send = np.zeros((2, self.delay), dtype=np.float32)
        # its own reverb, for its mix stem only: the mix convolves the summed sends once
        self.reverb = reverb.stream() if reverb is not None else None
        self.carried = np.zeros((2, 0), dtype=np.float32)  # output past the last block
        self.meter = LoudnessMeter(sr)  # the stem as rendered
        self.post = LoudnessMeter(sr)   # the player in the mix, before the room

    def play(self, block: np.ndarray | None, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The player's next ``n`` frames (``block``: (2, n) float32, None where silent):
        ``(dry, send)``, its signal on the stage and what it sends into the room, each (2, n)
        float32, or None where silent."""
        if (block is None or not kernels.any_sound(block)) and self._rung_out():
            self.meter.silence(n)
            self.post.silence(n)
            if self.compressor is not None:
                self.compressor.rest(n)
            return None, self.room_input(None, n)
        if block is None:
            block = np.zeros((2, n), dtype=np.float32)
        if self.compressor is None:
            dry, stem_steps, post_steps, peak = kernels.player(
                block, self.meter.sos, self.meter.step, self.meter.k_state, self.sos, self.zi,
                self.matrix, self.post.k_state, self.sections)
            self.meter.add_step_sums(stem_steps, peak)
            self.post.add_step_sums(post_steps)
        else:
            filtered, stem_steps, _, peak = kernels.player(
                block, self.meter.sos, self.meter.step, self.meter.k_state, self.sos, self.zi,
                None, None, self.sections)
            self.meter.add_step_sums(stem_steps, peak)
            dry = self.matrix @ self.compressor.process(filtered)
            self.post.feed(dry)
        return dry, self.room_input(dry, n)

    def _rung_out(self) -> bool:
        """True when silence in gives silence out (to within ``RUNG_OUT``)."""
        return float(np.abs(self.zi).max()) < RUNG_OUT and \
            (self.compressor is None or self.compressor.at_rest(RUNG_OUT))

    def contribution(self, dry: np.ndarray | None, send: np.ndarray | None,
                     n: int) -> np.ndarray:
        """This player's part of the mix for the block: its dry signal plus its own reverb
        (with what rang over from earlier blocks), (2, n). For the mix stems only."""
        wet = self.reverb.process(None if send is None else ROOM_FEED @ send)
        y = np.zeros((2, n), dtype=np.float32) if wet is None else wet[:, :n].copy()
        if wet is not None:
            self.carried = wet[:, n:]
        if dry is not None:
            y += dry
        return y

    def room_input(self, dry: np.ndarray | None, n: int) -> np.ndarray | None:
        """What the player sends into the room for this block, after its pre-delay: (2, n)
        float32 of its own (None: silence)."""
        d = self.delay
        if dry is None and not self.carried_send.any():
            return None
        line = np.empty((2, d + n), dtype=np.float32)
        line[:, :d] = self.carried_send  # the frames that ran past the last block come first
        if dry is None:
            line[:, d:] = 0.0
        else:
            np.multiply(dry, self.send, out=line[:, d:])
        self.carried_send = line[:, n:]
        return line[:, :n]


def mix(stems: Stems | StemStream, voices: tuple[Voice, ...], template: Template, *,
        calibration_db: tuple[float, ...] | None = None, layout: str | None = None,
        parts: tuple[PartSettings | None, ...] | None = None,
        mix_stems_dir: Path | None = None, progress: ProgressFn | None = None,
        workers: int | None = None, buffers: AudioBuffers = IN_MEMORY) -> Mix:
    """Mix the stems with ``template``'s seating and room.

    Parameters
    ----------
    stems : the rendered stems, read from their files; or a :class:`~pipeline.model.StemStream`
        to mix while they are being rendered (its blocks are mixed as they come).
    calibration_db : gain per stem that brings its instrument's mf to a common loudness
        (:func:`pipeline.render.calibration.calibration_db`); none when omitted.
    layout : one of the template's other seatings (e.g. ``antiphonal``); default its standard.
    parts : per stem, the piece's sidecar settings (its ``level`` in dB is added to the
        stem's gain, its ``pan`` replaces the seat's); ``None`` entries change nothing.
    mix_stems_dir : where to write each player's post-fader contribution, reverb included
        (float32 WAV, same length as the mix); not written when omitted.
    workers : threads reading and processing the players of a block side by side (from files;
        a stream's players are processed where it makes their blocks); default one per core.
    buffers : where the whole mix's array is made (see :class:`~pipeline.model.AudioBuffers`).

    Returns a :class:`Mix` whose audio is (2, frames) float32 peaking at ``MIX_PEAK_DBFS``; the
    frames include the room's decay after the last stem sample.
    """
    sr = stems.sample_rate
    parts = parts or (None,) * len(stems.stems)
    seats = [p if s is None or s.pan is None else replace(p, pan=s.pan, seat=f"{p.seat} (pan from sidecar)")
             for p, s in zip(placements(stems, voices, template, layout), parts)]
    calibration = calibration_db or (0.0,) * len(stems.stems)
    # the pre-delay is each player's own (see _Channel), so the response starts at once
    room = replace(template.room, predelay_ms=0.0)
    reverb = _Reverb(impulse_response(room, sr), BLOCK_FRAMES)
    hall = reverb.stream()
    channels = [_Channel(p, v, template, sr, c, reverb if mix_stems_dir is not None else None,
                         level_db=_level_db(s))
                for p, v, c, s in zip(seats, voices, calibration, parts)]
    overhang = reverb.ir_len - 1
    live = not isinstance(stems, Stems)
    # a feed's length is known only at its end: room for the longest it can be (pages are
    # not given memory until written; every frame is written before it is read)
    total = (stems.max_frames if live else stems.frames) + overhang
    # whole-mix arrays in this stage: this one, and its trimmed view (the same memory)
    out = buffers.empty(2, total)  # every frame is written before it is read
    meter = LoudnessMeter(sr)  # the mix before its final gain
    # a mix stem appears under its own name only once scaled (removed if the mix fails)
    with ExitStack() as finished:
        partial = [] if mix_stems_dir is None else [
            finished.enter_context(atomic_path(mix_stems_dir / s.path.name)) for s in stems.stems]
        with ExitStack() as files_open, ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
            writers = [files_open.enter_context(AudioOut(p, sr, 2, subtype="FLOAT"))
                       for p in partial]
            if live:  # each player plays its block on the synth thread that made it
                played = stems.blocks(lambda i, audio, width: channels[i].play(audio, width))
            else:
                played = _played_file_blocks(stems, channels, files_open, pool)
            report = (lambda done: progress(done / stems.frames)) if progress and not live \
                else None
            frames = _mix_blocks(played, channels, writers, out, meter, hall, pool, overhang,
                                 report)
        # the meter has seen every sample before the room's decay
        decay = np.abs(out[:, frames:frames + overhang]).max(axis=0, initial=0.0)
        peak = max(meter.peak, float(decay.max(initial=0.0)))
        out = _trim_tail(out, frames, decay, peak)
        meter.feed(out[:, frames:])  # the room's decay, as far as it is kept
        gain_db = MIX_PEAK_DBFS - gain_to_db(peak) if peak > 0 else 0.0
        gain = np.float32(db_to_gain(gain_db))
        peaks = _scale_in_place(out, gain)
        for tmp in partial:
            _scale_file(tmp, gain, out.shape[1])
    levels = tuple(StemLevel(part=s.name, file=f"stems/{s.path.name}", pan=round(p.pan, 3),
                              depth=round(p.depth, 3), seat=p.seat, bus=p.bus,
                              peak_dbfs=round(gain_to_db(ch.meter.peak), 2),
                              loudness_lufs=_round(ch.meter.integrated_lufs()),
                              calibration_db=round(c, 2), gain_db=round(ch.gain_db + gain_db, 2),
                              send_db=round(ch.send_db, 2), predelay_ms=round(ch.predelay_ms, 1),
                              damping_hz=round(ch.damping_hz),
                              mix_lufs=_round(ch.post.integrated_lufs() + gain_db),
                              mix_stem=f"mix-stems/{s.path.name}" if partial else None,
                              instrument=v.instrument, family=v.family, eq=tuple(ch.eq),
                              compressor=ch.compressor.summary() if ch.compressor else None,
                              level_db=_level_db(o))
                   for s, p, v, c, ch, o in zip(stems.stems, seats, voices, calibration, channels,
                                                parts))
    settings = {"template": template.name, "layout": layout or "standard",
                "stage_width": template.stage_width,
                "player_width": template.player_width, "room": template.room.name,
                "rt60_s": template.room.rt60_s, "predelay_ms": template.room.predelay_ms,
                "reverb_send_db": template.reverb_send_db, "mix_gain_db": round(gain_db, 2),
                "mix_peak_target_dbfs": MIX_PEAK_DBFS,
                "peak_dbfs": round(gain_to_db(peak * float(gain)), 2) if peak else None,
                "calibrated": calibration_db is not None,
                "buses": dict(template.section_db)}
    # the gain scales every step's power by gain²: the same reading as metering the scaled mix
    # (to float rounding, about 1e-6 LU)
    loudness = Loudness(meter.result().steps * float(gain) ** 2)
    return Mix(valid_audio(out, name="mix", peaks=peaks), sr, levels, settings,
               loudness.integrated_lufs(),
               loudness.short_term_lufs())


def _level_db(part: PartSettings | None) -> float:
    return part.level_db if part is not None and part.level_db is not None else 0.0


def _scale_file(path: Path, gain: np.float32, frames: int) -> None:
    """Apply the mix's final gain to a mix stem in place, block by block, and cut it to
    the mix's length."""
    with for_output(sf.SoundFile(str(path), "r+")) as f:
        if f.frames > frames:
            f.truncate(frames)
        for start in range(0, f.frames, BLOCK_FRAMES):
            f.seek(start)
            block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            f.seek(start)
            f.write(block * gain)


def _round(value: float) -> float | None:
    return round(value, 2) if np.isfinite(value) else None


def _played_file_blocks(stems: Stems, channels: list[_Channel], files_open: ExitStack, pool):
    """The players' blocks from the stems' files: ``(start, n, played)``, ``played[i]``
    player ``i``'s ``(dry, send)`` (:meth:`_Channel.play`; the players read and play side by
    side on ``pool``)."""
    files = [files_open.enter_context(sf.SoundFile(str(s.path))) for s in stems.stems]

    def play(i: int, n: int):
        return channels[i].play(read_float_frames(files[i], n), n)

    for start in range(0, stems.frames, BLOCK_FRAMES):
        n = min(BLOCK_FRAMES, stems.frames - start)
        yield start, n, list(pool.map(play, range(len(channels)), [n] * len(channels)))


def _mix_blocks(blocks, channels, writers, out, meter, hall, pool, overhang, progress) -> int:
    """Sum every block of the players (``blocks``: ``(start, n, played)``, ``played[i]``
    player ``i``'s ``(dry, send)`` for the block, each (2, ≥ n) float32 or None where silent)
    into ``out``: left and right side by side on the pool, each in the players' order (so the
    mix is the same bits whatever thread played whom); one room for all of them, convolved,
    added and metered on a thread of its own while the next block is summed; each player's
    contribution to ``writers`` when mix stems are asked for. Returns the stems' length."""
    room_in = np.zeros((2, BLOCK_FRAMES), dtype=np.float32)

    def add_row(row: int, played, start: int, n: int) -> bool:
        """One channel (row) of every player's dry signal and send summed into the mix and
        the room's input, in the players' order (the same sums whatever thread played whom);
        whether anything was sent."""
        sent = written = False
        for dry, send in played:
            if dry is not None:
                if written:
                    out[row, start:start + n] += dry[row, :n]
                else:  # written, not added (the array is not filled)
                    out[row, start:start + n] = dry[row, :n]
                    written = True
            if send is not None:
                if sent:
                    room_in[row, :n] += send[row, :n]
                else:
                    room_in[row, :n] = send[row, :n]
                    sent = True
        if not written:
            out[row, start:start + n] = 0.0
        return sent

    carried = np.zeros((2, 0), dtype=np.float32)

    def room(room_in: np.ndarray | None, at: int, n: int) -> None:
        """The room's share of a block whose players are in: added, then the block metered."""
        nonlocal carried
        wet = hall.process(None if room_in is None else ROOM_FEED @ room_in)
        if wet is not None:
            out[:, at:at + n] += wet[:, :n]
            carried = wet[:, n:]
        meter.feed(out[:, at:at + n])

    def write_contribution(i: int, played, n: int) -> None:
        dry, send = (None if part is None else part[:, :n] for part in played)
        writers[i].write(channels[i].contribution(dry, send, n).T)

    frames = 0
    with ThreadPoolExecutor(1) as room_thread:
        echo = None
        for start, n, played in blocks:
            # the two channels are summed side by side
            sent = any(list(pool.map(add_row, (0, 1), [played] * 2, [start] * 2, [n] * 2)))
            sends = room_in[:, :n].copy() if sent else None
            if echo is not None:
                echo.result()  # at most one block's room waiting behind the one running
            echo = room_thread.submit(room, sends, start, n)
            if writers:
                list(pool.map(write_contribution, range(len(channels)), played, [n] * len(channels)))
            del played
            frames = start + n
            if progress:
                progress(frames)
        if echo is not None:
            echo.result()
    # the reverb still ringing after the last note
    out[:, frames:frames + overhang] = hall.tail(carried, overhang)  # nothing there yet
    for w, ch in zip(writers, channels):
        w.write(ch.reverb.tail(ch.carried, overhang).T)
    return frames


def _trim_tail(audio: np.ndarray, keep: int, decay: np.ndarray, peak: float) -> np.ndarray:
    """Drop the room's decay (after frame ``keep``; ``decay``: its level per frame, the
    largest magnitude of any channel; nothing was written past it) once it is below
    ``SILENCE_DBFS`` of the mix's ``peak`` (the largest sample up to its end: the trim keeps
    it)."""
    if peak == 0:
        return audio[:, :keep]
    loud = np.flatnonzero(decay > peak * db_to_gain(SILENCE_DBFS))
    end = keep + (int(loud[-1]) + 1 if loud.size else 0)
    return crop_in_place(audio, 0, end)


def _scale_in_place(audio: np.ndarray, gain: np.float32) -> np.ndarray:
    """``audio *= gain``, a block at a time; the result's block peaks
    (:func:`~pipeline.dsp.audio.peak_blocks`), kept as it is written."""
    peaks = peak_blocks(audio.shape[1])
    gains = np.full(BLOCK_FRAMES, gain, dtype=np.float32)
    for start in range(0, audio.shape[1], BLOCK_FRAMES):
        part = audio[:, start:start + BLOCK_FRAMES]
        kernels.scaled(part, gains[:part.shape[1]], part, start, PEAK_BLOCK, peaks)
    return peaks


class _Reverb:
    """A stereo impulse response cut into partitions of one block, each kept as its spectrum:
    streams (:meth:`stream`) convolve with it block by block."""

    def __init__(self, ir: np.ndarray, block: int):
        if block % 2:
            raise ValueError(f"the reverb's block must have an even length, not {block}")
        self.block = block
        self.ir_len = ir.shape[1]
        self.partitions = max(1, -(-self.ir_len // block))
        padded = np.zeros((ir.shape[0], self.partitions * block), dtype=np.float32)
        padded[:, : self.ir_len] = ir
        pieces = padded.reshape(ir.shape[0], self.partitions, block).transpose(1, 0, 2)
        # single precision: its error (about −130 dB) is far below the −60 dB the mix stems
        # must sum to, and it halves the time of the transforms
        self.spectra = scipy.fft.rfft(pieces, n=2 * block, axis=2)
        self.twiddles = kernels.half_twiddles(block)

    def stream(self) -> _ReverbStream:
        return _ReverbStream(self)


class _ReverbStream:
    """Convolution of one stream with a :class:`_Reverb`, uniformly partitioned in the frequency
    domain (overlap-save over a delay line of past input spectra): a block costs two FFTs of
    twice its length and one multiply-add per partition, however long the response; a block
    of silence after the response has rung out costs nothing."""

    def __init__(self, reverb: _Reverb):
        self.reverb = reverb
        self.history = np.zeros_like(reverb.spectra)  # input spectra, newest at self.newest
        self.newest = 0
        # the input window, [last block | this block], its even and its odd samples apart
        # (see kernels.join_halves)
        self.window = np.zeros((reverb.spectra.shape[1], 2, reverb.block), dtype=np.float32)
        self.silent_blocks = reverb.partitions + 1  # nothing in the delay line yet

    def process(self, block: np.ndarray | None) -> np.ndarray | None:
        """The response to everything fed so far over the next ``block`` frames, given this
        block's input (channels, n ≤ block; None: silence); (channels, block) float32, or None
        when it is silent. A block shorter than ``block`` must be the last: what follows it
        in the output is the start of the tail."""
        r = self.reverb
        self.silent_blocks = self.silent_blocks + 1 if block is None else 0
        if self.silent_blocks > r.partitions:
            return None  # every partition has seen only silence
        half = r.block // 2
        window = self.window
        window[:, :, :half] = window[:, :, half:]  # this block becomes the last one
        if block is None:
            window[:, :, half:] = 0.0
        else:
            kernels.deinterleave(block, window[:, :, half:])
        self.newest = (self.newest + 1) % r.partitions
        if self.silent_blocks >= 2:  # the window holds no signal: its spectrum is zero
            self.history[self.newest] = 0
        else:
            kernels.join_halves(scipy.fft.rfft(window, axis=2), r.twiddles,
                                self.history[self.newest])
        acc = kernels.partitioned_spectrum(self.history, r.spectra, self.newest)
        halves = scipy.fft.irfft(kernels.split_halves(acc, r.twiddles), n=r.block, axis=2)
        return kernels.interleave_halves(halves, half, r.block)  # the window's second half

    def tail(self, carried: np.ndarray, frames: int) -> np.ndarray:
        """The ``frames`` frames after the last block: ``carried`` (what the last, shorter
        block's output held past its input) and then the response to silence."""
        pieces, have = [carried], carried.shape[1]
        while have < frames:
            y = self.process(None)
            if y is None:
                break
            pieces.append(y)
            have += y.shape[1]
        out = np.zeros((carried.shape[0], frames), dtype=np.float32)
        joined = np.concatenate(pieces, axis=1)[:, :frames]
        out[:, : joined.shape[1]] = joined
        return out
