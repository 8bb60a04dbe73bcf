"""Humanization: off by default, reproducible from its seed, within its stated bounds, chords
kept together, and a slowly drifting player rather than a trembling one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.score import humanize as hz
from pipeline.run.recipe import perform_to_midi
from pipeline.errors import PipelineError
from pipeline.score.load import load
from pipeline.model import TICKS_PER_QUARTER, Control, Note, Performance, TempoMap, Track
from pipeline.score.perform import perform

DATA = Path(__file__).resolve().parent / "data"
Q = TICKS_PER_QUARTER
TICK_S = 0.5 / Q  # one tick at 120 quarters a minute


def quarters(n: int = 400, *, chord: bool = False) -> Performance:
    """``n`` quarter notes at 120 (a three-note chord each when ``chord``), a program change
    before the first and a pedal before the tenth note."""
    keys = (60, 64, 67) if chord else (60,)
    notes = tuple(Note(k * Q, (k + 1) * Q, p + k % 5, 80) for k in range(n) for p in keys)
    controls = (Control(0, "program_change", 5, 0), Control(9 * Q, "control_change", 64, 127))
    return Performance(title="quarters", composer="", tempo_map=TempoMap(Q, ((0, 500_000),)),
                       tracks=(Track("Piano", "Piano", notes, controls, program=0),))


def shifts_ms(before: Performance, after: Performance) -> np.ndarray:
    tm = before.tempo_map
    on0 = np.array([n.on for t in before.tracks for n in t.notes])
    on1 = np.array([n.on for t in after.tracks for n in t.notes])
    return (tm.seconds(on1) - tm.seconds(on0)) * 1000


def test_off_by_default_and_at_zero_the_performance_is_untouched(tmp_path):
    p = quarters(20)
    assert hz.humanize(p, amount=0.0, seed=3) is p
    out = tmp_path / "off.mid"
    plain = perform(load(DATA / "lead-sheet-repeat.musicxml"))
    written = perform_to_midi(DATA / "lead-sheet-repeat.musicxml", out, humanize=0.0)
    assert written.tracks == plain.tracks


def test_the_same_seed_gives_the_same_performance_and_another_seed_another():
    p = perform(load(DATA / "jazz-rhythm-slashes.musicxml"))
    a = hz.humanize(p, amount=1.0, seed=7)
    assert a == hz.humanize(p, amount=1.0, seed=7)
    b = hz.humanize(p, amount=1.0, seed=8)
    assert a.tracks != b.tracks
    assert np.any(shifts_ms(a, b) != 0)


@pytest.mark.parametrize("amount", [0.3, 1.0])
def test_timing_and_velocity_stay_within_the_stated_bounds(amount):
    p = quarters(chord=True)
    h = hz.humanize(p, amount=amount, seed=11)
    moved = np.abs(shifts_ms(p, h))
    # the bound, plus half a tick of rounding to the tick grid
    assert moved.max() <= hz.MAX_TIMING_MS * amount + 1000 * TICK_S / 2 + 1e-9
    assert moved.max() > 0.5 * hz.MAX_TIMING_MS * amount  # it does vary, by a useful amount
    velocity = np.array([n.velocity for n in h.tracks[0].notes]) - 80
    assert np.abs(velocity).max() <= round(hz.MAX_VELOCITY * amount)
    assert velocity.std() > 0


def test_a_chords_notes_stay_within_a_few_ms_of_each_other():
    p = quarters(chord=True)
    h = hz.humanize(p, amount=1.0, seed=5)
    on = np.array([n.on for n in h.tracks[0].notes]).reshape(-1, 3)
    spread_ms = (on.max(axis=1) - on.min(axis=1)) * TICK_S * 1000
    assert spread_ms.max() <= 2 * hz.NOTE_MS + 1000 * TICK_S
    # while the chords themselves move by more than that
    assert np.abs(shifts_ms(p, h)).max() > 3 * hz.NOTE_MS


def test_the_player_drifts_slowly_instead_of_trembling():
    p = quarters(800)
    shift = shifts_ms(p, hz.humanize(p, amount=1.0, seed=2))
    # successive notes (half a second apart) are off in the same direction: white noise would
    # give a correlation near 0
    assert np.corrcoef(shift[:-1], shift[1:])[0, 1] > 0.4


def test_nothing_before_tick_0_no_note_shorter_than_a_tick_no_key_cut_short_controls_in_order():
    blips = tuple(Note(k * 10, k * 10 + 1, 60, 80) for k in range(50))  # repeated, 1-tick notes
    p = Performance(title="t", composer="", tracks=(
        Track("Piano", "Piano", blips, (Control(0, "program_change", 5, 0),
                                        Control(250, "control_change", 64, 127),
                                        Control(250, "control_change", 64, 0)), program=0),))
    for seed in range(20):
        h = hz.humanize(p, amount=1.0, seed=seed)
        notes = h.tracks[0].notes
        on = np.array([n.on for n in notes])
        off = np.array([n.off for n in notes])
        assert on.min() >= 0 and np.all(off - on >= 1)
        order = np.argsort(on, kind="stable")
        assert np.all(off[order][:-1] <= on[order][1:])  # the key is free before it is struck
        ticks = [c.tick for c in h.tracks[0].controls]
        assert ticks == sorted(ticks) and ticks[0] >= 0
        assert [c.value for c in h.tracks[0].controls] == [0, 127, 0]  # same order as written
        assert ticks[0] <= on.min()  # the program change still comes before the first note
        assert ticks[1] <= on[25:].min()  # the pedal before the notes written after it


@pytest.mark.parametrize("amount, seed", [(1.5, 1), (-0.1, 1), (float("nan"), 1), (0.5, -1)])
def test_out_of_range_options_are_refused_in_one_line(amount, seed, tmp_path):
    with pytest.raises(PipelineError) as err:
        perform_to_midi(DATA / "lead-sheet-repeat.musicxml", tmp_path / "never.mid",
                        humanize=amount, seed=seed)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "never.mid").exists()
