"""Stage building blocks against plain references, with stated tolerances."""
from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from pipeline.dsp.audio import crop_in_place, requantize
from pipeline.settings.config import load_template
from pipeline.errors import TemplateError
from pipeline.dsp.loudness import LoudnessMeter, integrated_lufs, measure, true_peak_dbtp
from pipeline.master.limiter import limiter_gain
from pipeline.dsp.loudness import true_peak_envelope
from pipeline.mix.mixer import pan_matrix
from pipeline.settings.seating import score_order as stage_positions
from pipeline.model import TempoMap
from pipeline.paths import slugify
from pipeline.dsp.rooms import Room, impulse_response, measured_rt60

SR = 48000


def test_streaming_loudness_matches_pyloudnorm():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2, SR * 20)) * 0.05).astype(np.float32)
    x[:, : SR * 5] *= 0.05  # a quiet start the relative gate must drop
    ours = integrated_lufs(x, SR)
    reference = pyloudnorm.Meter(SR).integrated_loudness(x.T.astype(np.float64))
    assert ours == pytest.approx(reference, abs=0.1)  # pyloudnorm's own test tolerance


def test_block_meter_skips_rests_without_changing_the_reading():
    # a player who plays, rests for three blocks, plays again: the rests are not filtered once
    # the filter has rung out, and the step powers stay those of the whole signal
    rng = np.random.default_rng(3)
    block = 1 << 14
    x = (rng.standard_normal((2, block * 8)) * 0.1).astype(np.float32)
    x[:, int(block * 2.5): block * 6] = 0.0
    meter = LoudnessMeter(SR)
    for start in range(0, x.shape[1], block):
        meter.feed(x[:, start:start + block])
    whole = measure(x, SR)
    np.testing.assert_allclose(meter.result().steps, whole.steps, rtol=1e-4, atol=1e-12)
    assert meter.integrated_lufs() == pytest.approx(whole.integrated_lufs(), abs=1e-3)
    assert meter.peak == float(np.abs(x).max())


@pytest.mark.parametrize("start,stop", [(0, 200_001), (70_000, 300_000), (1, 299_999), (0, 300_000)])
def test_cropping_in_place_keeps_the_samples_and_the_memory(start, stop):
    audio = np.arange(2 * 300_000, dtype=np.float32).reshape(2, 300_000)
    expected = audio[:, start:stop].copy()
    cropped = crop_in_place(audio, start, stop)
    assert cropped.flags.c_contiguous and np.shares_memory(cropped, audio)
    np.testing.assert_array_equal(cropped, expected)


def test_dither_drawn_in_blocks_is_the_same_noise():
    x = (np.random.default_rng(1).standard_normal((2, 200_003)) * 0.1).astype(np.float32)
    rng = np.random.default_rng(2024)  # the whole draws of the unblocked form
    noise = []
    for _ in range(2):
        noise.append(rng.random(x.shape[1], dtype=np.float32))
        noise.append(rng.random(x.shape[1], dtype=np.float32))
    scale = np.float32(1 << 15)
    expected = np.stack([(x[c] * scale + noise[2 * c]) - noise[2 * c + 1] for c in range(2)])
    expected = np.clip(np.rint(expected), -scale, scale - 1) * (np.float32(1.0) / scale)
    np.testing.assert_array_equal(requantize(x, 16, dither=True, seed=2024), expected)


def test_true_peak_finds_inter_sample_peak():
    # a quarter-rate sine sampled 45° off its crest: samples reach −3.01 dBFS, the wave 0 dBTP
    n = np.arange(SR)
    s = np.sin(2 * np.pi * (SR / 4) * n / SR + np.pi / 4).astype(np.float32)
    x = np.stack([s, s])
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.2)  # 48-tap interpolator ripple


def test_limiter_keeps_quiet_signal_untouched_and_adds_no_delay():
    t = np.arange(SR) / SR
    x = np.stack([0.1 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)
    x[:, SR // 2: SR // 2 + 100] *= 9.0  # a short burst over the ceiling
    gain = limiter_gain(true_peak_envelope(x), SR, -1.0)
    y = x * gain
    # well before the burst nothing changes (exact: gain is 1.0)
    np.testing.assert_array_equal(y[:, : SR // 2 - 200], x[:, : SR // 2 - 200])
    # the burst is caught where it happens, not later: no delay
    assert 20 * np.log10(np.abs(y).max()) <= -1.0 + 1e-3
    assert np.argmax(np.abs(y[0])) == pytest.approx(np.argmax(np.abs(x[0])), abs=110)


def test_limiter_does_not_pump_on_a_steady_tone():
    t = np.arange(2 * SR) / SR
    x = np.stack([0.99 * np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32)
    gain = limiter_gain(true_peak_envelope(x), SR, -3.0)
    steady = gain[SR // 2:]
    # after settling the gain holds still: less than 0.1 dB of movement
    assert 20 * np.log10(steady.max() / steady.min()) < 0.1


def test_tempo_map_seconds():
    tm = TempoMap(960, ((0, 500_000), (1920, 1_000_000)))  # 120 bpm, then 60 bpm at beat 3
    np.testing.assert_allclose(tm.seconds(np.array([0, 960, 1920, 2880])), [0, 0.5, 1.0, 2.0])


def test_room_decay_time_is_as_asked():
    ir = impulse_response(Room("hall", rt60_s=2.0), SR)
    assert ir.shape[0] == 2
    # Schroeder T20 over the broadband response: bass decays longer, highs shorter
    assert measured_rt60(ir, SR) == pytest.approx(2.0, rel=0.25)
    np.testing.assert_array_equal(ir, impulse_response(Room("hall", rt60_s=2.0), SR))  # seeded


def test_stage_positions_and_pan():
    assert stage_positions(1, 0.7) == [0.0]
    left, *_, right = stage_positions(4, 0.7)
    assert left == pytest.approx(-0.7) and right == pytest.approx(0.7)
    centre = pan_matrix(0.0, 1.0)
    np.testing.assert_allclose(centre, np.eye(2), atol=1e-6)  # centre, full width = unchanged
    hard_left = pan_matrix(-1.0, 0.0) @ np.array([1.0, 1.0])
    assert hard_left[1] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("title", ["../../etc/passwd", "Nocturne No. 2", "...", "Ständchen / Serenade"])
def test_slugs_are_safe(title):
    slug = slugify(title)
    assert slug and "/" not in slug and "." not in slug and slug == slug.lower()


def test_unknown_template_names_the_choices():
    with pytest.raises(TemplateError, match="orchestra"):
        load_template("marching-band")


def test_stage_labels_of_close_neighbours_take_turns_and_lone_players_stay_above():
    from pipeline.output.report import LABEL_SLOTS, _label_slots
    row = [(x, 0.8) for x in (0.0, 0.05, 0.1)] + [(-0.8, 0.25)]  # (pan, depth)
    slots = _label_slots(row, ["Trombone 1 -33.7", "Trombone 2 -33.6", "Bass Trombone -33.8",
                               "Violin II -35.5"], 6.5)
    assert len(set(slots[:3])) == 3  # three crowded labels: above, below, higher above
    assert slots[3] == LABEL_SLOTS[0]


def _mido_save(performance, path, programs):
    """performance.mid as mido's MidiFile.save writes it: the reference for write_midi."""
    import mido

    from pipeline.model import OWN_PROGRAM
    from pipeline.score.perform import _midi_text

    def delta(timed):
        out, last = [], 0
        for t, msg in timed:
            out.append(msg.copy(time=t - last))
            last = t
        return out

    mid = mido.MidiFile(type=1, ticks_per_beat=performance.tempo_map.ticks_per_quarter)
    conductor = mido.MidiTrack([mido.MetaMessage("track_name", name=_midi_text(performance.title))])
    num, den = performance.time_signature
    conductor.append(mido.MetaMessage("time_signature", numerator=num, denominator=den))
    conductor.extend(delta([(t, mido.MetaMessage("set_tempo", tempo=us))
                            for t, us in performance.tempo_map.changes]))
    mid.tracks.append(conductor)
    melodic = iter(c for c in range(16) if c != 9)
    for track, (bank, program) in zip(performance.tracks, programs):
        channel = 9 if track.is_percussion else next(melodic)
        timed = [] if track.is_percussion else [
            (0, 0, mido.Message("control_change", channel=channel, control=0, value=bank))]
        timed.append((0, 1, mido.Message("program_change", channel=channel, program=program)))
        for c in track.controls:
            if c.kind == "control_change":
                msg = mido.Message("control_change", channel=channel, control=c.number,
                                   value=c.value)
            elif c.kind == "program_change":
                msg = mido.Message("program_change", channel=channel,
                                   program=program if c.number == OWN_PROGRAM else c.number)
            else:
                msg = mido.Message("pitchwheel", channel=channel, pitch=c.value)
            timed.append((c.tick, 2, msg))
        for n in track.notes:
            timed.append((n.off, 1, mido.Message("note_off", channel=channel, note=n.pitch,
                                                 velocity=0)))
            timed.append((n.on, 3, mido.Message("note_on", channel=channel, note=n.pitch,
                                                velocity=n.velocity)))
        timed.sort(key=lambda x: (x[0], x[1]))
        mid.tracks.append(mido.MidiTrack(
            [mido.MetaMessage("track_name", name=_midi_text(track.name)), *delta(
                [(t, m) for t, _, m in timed])]))
    mid.save(str(path))


def test_write_midi_makes_mido_s_bytes(tmp_path):
    """performance.mid's bytes are made directly: the same as mido's MidiFile.save of the
    same messages (running status, variable-length deltas past 2¹⁴ ticks, bends both ways,
    program changes back to the part's own, a drum track, names outside Latin-1)."""
    from pipeline.model import OWN_PROGRAM, Control, Note, Performance, Track
    from pipeline.score.perform import write_midi

    violin = Track("Violin I", "violin", tuple(Note(i * 480, i * 480 + 400, 60 + i % 12, 30 + i)
                                              for i in range(80)),
                   (Control(0, "control_change", 11, 90), Control(960, "program_change", 45),
                    Control(20000, "program_change", OWN_PROGRAM),
                    Control(30000, "pitchwheel", 0, -8192), Control(30010, "pitchwheel", 0, 8191),
                    Control(3_000_000, "control_change", 64, 0)))
    drums = Track("Drum set", "drums", tuple(Note(i * 240, i * 240 + 10, 36 + i % 3, 100)
                                            for i in range(50)), is_percussion=True)
    horn = Track("Horn in F♯ ☃", "horn", (Note(0, 200_000, 55, 64), Note(0, 100, 55, 64)))
    tempo = TempoMap(480, ((0, 500_000), (4800, 400_000), (2_000_000, 600_000)))
    performance = Performance(title="Étude ♭", composer="", tracks=(violin, drums, horn),
                              tempo_map=tempo, time_signature=(6, 8))
    programs = [(17, 40), (128, 0), (0, 60)]
    write_midi(performance, tmp_path / "ours.mid", programs)
    _mido_save(performance, tmp_path / "mido.mid", programs)
    assert (tmp_path / "ours.mid").read_bytes() == (tmp_path / "mido.mid").read_bytes()


class _SyncCounter:
    """soundfile's cffi library with its ``sf_write_sync`` (libsndfile's fsync) counted."""

    def __init__(self, lib):
        self.lib, self.syncs = lib, 0

    def __getattr__(self, name):
        if name == "sf_write_sync":
            self.syncs += 1
        return getattr(self.lib, name)


def test_output_files_are_closed_without_an_fsync(tmp_path, monkeypatch):
    """Every file the pipeline writes is closed without forcing it to the disk (the render
    waited on 2.5 GB of it), and is still whole and readable when closed."""
    import soundfile as sf

    from pipeline.output.export import write_audio
    from pipeline.mix.mixer import _scale_file
    from pipeline.render.stems import _set_length, _StemWriters

    counter = _SyncCounter(sf._snd)
    monkeypatch.setattr(sf, "_snd", counter)
    audio = (np.random.default_rng(3).standard_normal((2, 5000)) * 0.1).astype(np.float32)
    write_audio(tmp_path / "master.wav", audio, 44100, bit_depth=24)
    stems = [tmp_path / "a.wav", tmp_path / "b.wav"]
    with _StemWriters(stems, 44100) as writers:
        writers.write(np.vstack([audio, audio]))
    _set_length(stems[0], 6000)
    _scale_file(stems[1], np.float32(0.5), 4000)
    assert counter.syncs == 0
    monkeypatch.undo()
    assert sf.info(str(tmp_path / "master.wav")).frames == 5000
    assert sf.info(str(stems[0])).frames == 6000
    scaled, _ = sf.read(str(stems[1]), dtype="float32")
    np.testing.assert_array_equal(scaled.T, audio[:, :4000] * np.float32(0.5))


def test_atomic_path_leaves_the_file_to_its_writer(tmp_path):
    """The temporary path does not exist yet: the writer makes the file rather than truncating
    one (ext4 writes a truncated file's data out on close, which the render waited for)."""
    from pipeline.files import atomic_path

    with atomic_path(tmp_path / "master.wav") as tmp:
        assert tmp.parent == tmp_path and not tmp.exists()
        tmp.write_bytes(b"whole")
    assert (tmp_path / "master.wav").read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["master.wav"]


def test_an_audio_file_written_letting_go_of_its_pages_is_the_same_file(tmp_path, monkeypatch):
    """AudioOut writes the bytes soundfile writes (no PEAK chunk, the same header and samples),
    hands each whole window to the disk once, in order, and lets go of the pages two windows
    behind the writing: the page cache does not fill with what a render has written."""
    import os

    import soundfile as sf

    from pipeline import files
    from pipeline.dsp import kernels

    window = 1 << 16
    monkeypatch.setattr(files, "WRITTEN_WINDOW_BYTES", window)
    handed, dropped = [], []
    real_fadvise = os.posix_fadvise

    def sync_file_range(fd, offset, nbytes, flags):
        handed.append((offset, nbytes, flags))
        return 0

    def fadvise(fd, offset, nbytes, advice):
        if advice == os.POSIX_FADV_DONTNEED:
            dropped.append((offset, nbytes))
        return real_fadvise(fd, offset, nbytes, advice)

    monkeypatch.setattr(files, "_sync_file_range", lambda: sync_file_range)
    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    audio = np.random.default_rng(3).uniform(-1, 1, (2, 100_000)).astype(np.float32)
    with files.AudioOut(tmp_path / "ours.wav", SR, 2, subtype="FLOAT") as out:
        for start in range(0, audio.shape[1], 7_000):
            out.write_raw(kernels.interleave(audio[:, start:start + 7_000]))
    with files.for_output(sf.SoundFile(str(tmp_path / "theirs.wav"), "w", SR, 2,
                                       subtype="FLOAT", format="WAV")) as f:
        f.write(audio.T)
    assert (tmp_path / "ours.wav").read_bytes() == (tmp_path / "theirs.wav").read_bytes()
    written = (tmp_path / "ours.wav").stat().st_size
    assert [h[0] for h in handed] == [k * window for k in range(len(handed))]
    assert all(h[1] == window for h in handed) and len(handed) == written // window
    assert dropped and all(offset == 0 for offset, _ in dropped)
    assert dropped[-1][1] == len(handed) * window - 2 * window  # two windows behind
