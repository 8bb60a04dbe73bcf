"""Stage building blocks against plain references, with stated tolerances."""
from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest

from pipeline.audio import crop_in_place, requantize
from pipeline.config import load_template
from pipeline.errors import TemplateError
from pipeline.loudness import LoudnessMeter, integrated_lufs, measure, true_peak_dbtp
from pipeline.dynamics import limiter_gain
from pipeline.loudness import true_peak_envelope
from pipeline.mix import pan_matrix
from pipeline.seating import score_order as stage_positions
from pipeline.model import TempoMap
from pipeline.paths import slugify
from pipeline.rooms import Room, impulse_response, measured_rt60

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
    from pipeline.report import LABEL_SLOTS, _label_slots
    row = [{"pan": x, "depth": 0.8} for x in (0.0, 0.05, 0.1)] + [{"pan": -0.8, "depth": 0.25}]
    slots = _label_slots(row, ["Trombone 1 -33.7", "Trombone 2 -33.6", "Bass Trombone -33.8",
                               "Violin II -35.5"], 6.5)
    assert len(set(slots[:3])) == 3  # three crowded labels: above, below, higher above
    assert slots[3] == LABEL_SLOTS[0]
