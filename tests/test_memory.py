"""Memory that does not grow with a piece's length: the master's gain search keeps only the
loud stretches, and the whole-piece arrays live in files mapped into memory."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.dsp import kernels
from pipeline.dsp.loudness import k_weighted_power, step_means, step_powers, true_peak_envelope
from pipeline.errors import OutputError
from pipeline.master.limiter import limiter_gain, reach_frames
from pipeline.master.loud_spans import loud_spans
from pipeline.model import SpanGain
from pipeline.speed.file_backed import BUDGET_BYTES, POLL_S, FileBackedAudio, Pager

SR = 48000


def loud_and_quiet(seconds: float = 30.0, seed: int = 5) -> np.ndarray:
    """Soft noise with three loud bursts: most of the piece is far under its peak."""
    rng = np.random.default_rng(seed)
    x = (0.02 * rng.standard_normal((2, int(seconds * SR)))).astype(np.float32)
    for at_s in (4.0, 4.3, 19.0):
        a = int(at_s * SR)
        x[:, a:a + SR // 5] *= 40.0
    return x


def test_the_gain_search_on_the_loud_stretches_alone_is_the_gain_on_every_frame():
    x = loud_and_quiet()
    peak = float(np.abs(x).max())
    guard_db = 6.0
    floor = peak * 10 ** ((-guard_db - 1) / 20)  # as the master asks: where the limiter can act
    loud = loud_spans(x, SR, floor=floor, deepest_db=guard_db + 3)
    kept = sum(e.size for e in loud.envelope)
    assert 0 < kept < x.shape[1] / 3  # the bursts and the limiter's reach, not the piece
    envelope, power = true_peak_envelope(x, floor), k_weighted_power(x, SR)
    for a, env, p in zip(loud.starts, loud.envelope, loud.power):
        np.testing.assert_array_equal(env, envelope[a:a + env.size])
        np.testing.assert_array_equal(p, power[a:a + p.size])
    np.testing.assert_array_equal(loud.steps, step_powers(power, SR))
    for gain_db in (0.0, 3.0, 6.0):  # louder and louder: more and more limiting
        scale = np.float32(10 ** (gain_db / 20))
        every = limiter_gain(envelope, SR, -1.0, scale=scale)
        sparse = loud.limiter_gain(-1.0, scale)
        np.testing.assert_array_equal(sparse.slice(0, x.shape[1]), every)
        np.testing.assert_allclose(loud.step_powers(sparse, scale),
                                   step_powers(power, SR, every, scale=scale), rtol=1e-6)
        assert loud.peak(sparse, scale) == pytest.approx(float((envelope * scale * every).max()))
        # and exactly what multiplying every frame of the spans out gives
        step, want, peak = loud.step, loud.steps * float(scale) ** 2, loud.quiet_peak * float(scale)
        for a, env, p in zip(loud.starts, loud.envelope, loud.power):
            g = sparse.slice(a, a + env.size) * scale
            whole = p.size // step
            want[a // step:a // step + whole] = step_means(p[:whole * step] * (g * g)[:whole * step],
                                                           step)
            peak = max(peak, float((env * scale * sparse.slice(a, a + env.size)).max()))
        np.testing.assert_array_equal(loud.step_powers(sparse, scale), want)
        assert loud.peak(sparse, scale) == peak


def test_the_limiters_reach_covers_its_release_from_the_deepest_reduction():
    before, after = reach_frames(SR, 9.0)
    assert before > 1.5e-3 * SR  # the look-ahead
    assert after > (9.0 + 1.0) / 8.0 * SR  # the slow release, 8 dB a second


def test_a_gain_kept_as_stretches_reads_back_as_every_frame():
    every = np.ones(10_000, dtype=np.float32)
    every[1200:1900] = np.linspace(0.5, 1.0, 700, dtype=np.float32)
    every[7000:7050] = 0.25
    gain = SpanGain(10_000, (1200, 7000), (every[1200:1900].copy(), every[7000:7050].copy()))
    np.testing.assert_array_equal(gain.slice(0, 10_000), every)
    np.testing.assert_array_equal(gain.slice(1500, 7020), every[1500:7020])
    np.testing.assert_array_equal(gain.crop(1000, 7010).slice(0, 6010), every[1000:7010])
    assert gain.lowest() == 0.25
    lo, _ = kernels.column_range(every[None, :], 300)
    np.testing.assert_array_equal(gain.column_lowest(300), lo)


def resident_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


def test_a_whole_piece_array_in_a_file_does_not_stay_in_memory(tmp_path):
    pager = Pager()
    try:
        frames = 25 * 60 * SR // 2  # 12.5 minutes of stereo: 288 MB
        audio = FileBackedAudio(tmp_path, pager).empty(2, frames)
        assert not list(tmp_path.iterdir())  # no name left behind, whatever happens next
        before = resident_file_mb()
        for start in range(0, frames, 1 << 20):
            audio[:, start:start + (1 << 20)] = 0.25
        time.sleep(4 * POLL_S)
        assert resident_file_mb() - before < BUDGET_BYTES / 2 ** 20 + 64  # let go of as written
        assert float(audio[1, frames - 1]) == 0.25 and float(audio[0, 0]) == 0.25  # still there
    finally:
        pager.close()


def test_a_new_array_is_brought_in_ahead_and_let_go_of_with_it(tmp_path):
    # the populating thread touches a fresh array's pages before the stages do: it changes
    # nothing written meanwhile, the pager still bounds what stays resident, and once the
    # array is dropped nothing holds its file
    import gc
    import weakref

    pager = Pager()
    try:
        frames = 8 * 60 * SR  # 8 minutes of stereo: 184 MB
        audio = FileBackedAudio(tmp_path, pager, ahead=True).empty(2, frames)
        before = resident_file_mb()
        audio[:, :SR] = 0.5  # written while its pages are brought in
        deadline = time.monotonic() + 30.0
        brought_in = 0.0
        while time.monotonic() < deadline and brought_in < 8:
            brought_in = max(brought_in, resident_file_mb() - before)
            time.sleep(POLL_S / 2)
        assert brought_in >= 8  # in ahead of any stage's touch: nothing else touched them
        audio[:, -SR:] = 0.25
        assert float(audio[0, 0]) == 0.5 and float(audio[1, SR - 1]) == 0.5
        assert float(audio[1, -1]) == 0.25 and float(audio[0, SR]) == 0.0
        time.sleep(30 * POLL_S)
        assert resident_file_mb() - before < BUDGET_BYTES / 2 ** 20 + 64
        owner = audio
        while isinstance(owner, np.ndarray):
            owner = owner.base
        mapped = weakref.ref(owner.obj if isinstance(owner, memoryview) else owner)  # the mmap
        del audio, owner
        gc.collect()
        time.sleep(10 * POLL_S)
        assert mapped() is None  # neither thread keeps it
    finally:
        pager.close()


def test_no_room_for_the_mix_is_a_clear_error(tmp_path):
    import os
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(disk)], capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    pager = Pager()
    try:
        with pytest.raises(OutputError, match="no room for the piece's audio") as caught:
            FileBackedAudio(disk, pager).empty(2, 10 * SR)
        assert isinstance(caught.value.__cause__, OSError)  # read as a full disk by the render
        assert not list(disk.iterdir())
    finally:
        pager.close()
        subprocess.run(["umount", "-l", str(disk)], check=False)
