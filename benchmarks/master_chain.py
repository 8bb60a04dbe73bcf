"""Mastering-chain benchmark (``make bench-master``): wall time of the stages that have a budget.

- master: the whole mastering chain on a 20-minute stereo mix, per preset (budget: well under 10 s)
- perform: performing Beethoven's Große Fuge op. 133 after parsing (budget: under 2 s)

Pass ``--mix FILE`` to time the chain on a real mix.wav instead of the synthetic one.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's pipeline

from pipeline.settings.config import load_preset, load_template, preset_names
from pipeline.dsp.loudness import measure
from pipeline.master.mastering import finish, prepare
from pipeline.model import Mix

SR = 48000
MINUTES = 20


def synthetic_mix(minutes: float = MINUTES, seed: int = 0) -> np.ndarray:
    """Music-like test material: pink-ish noise with phrase-long swells and 300 loud accents."""
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * SR)
    x = lfilter([0.05], [1, -0.95], rng.standard_normal((2, n), dtype=np.float32), axis=1)
    x = x.astype(np.float32)
    x *= (0.3 + 0.7 * np.abs(np.sin(np.arange(n) / SR * 2 * np.pi / 37))).astype(np.float32)
    for start in rng.integers(0, n - 2000, 300):
        x[:, start:start + 2000] *= 3
    return x * np.float32(0.6 / np.abs(x).max())


def bench_master(audio: np.ndarray, sr: int, ensemble: str) -> None:
    loud = measure(audio, sr)
    mix = Mix(audio, sr, (), {}, loud.integrated_lufs(), loud.short_term_lufs())
    print(f"master: {audio.shape[1] / sr / 60:.1f}-minute stereo mix at {sr} Hz, ensemble {ensemble}")
    print(f"  {'preset':12s} {'prepare':>8s} {'finish':>8s} {'total':>8s}   result")
    for name in preset_names():
        preset = load_preset(name)
        t0 = time.perf_counter()
        prep = prepare(mix, preset, load_template(ensemble).mastering)
        t1 = time.perf_counter()
        m = finish(prep)
        t2 = time.perf_counter()
        mm = m.measurements
        print(f"  {name:12s} {t1 - t0:7.2f}s {t2 - t1:7.2f}s {t2 - t0:7.2f}s   "
              f"{mm['integrated_lufs']} LUFS, {mm['true_peak_dbtp']} dBTP, "
              f"limiter ≤ {mm['limiter_max_reduction_db']} dB")
        del prep, m


def bench_perform() -> None:
    from music21 import corpus

    from pipeline.score.load import load
    from pipeline.score.perform import perform

    path = corpus.getWork("beethoven/opus133")
    t0 = time.perf_counter()
    loaded = load(path)
    t1 = time.perf_counter()
    performance = perform(loaded)
    t2 = time.perf_counter()
    print(f"perform: Große Fuge op. 133 — parse {t1 - t0:.2f}s, perform {t2 - t1:.2f}s "
          f"({performance.note_count} notes, {performance.duration_s:.0f} s of music)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mix", help="a mix.wav to master instead of the synthetic 20-minute mix")
    ap.add_argument("--ensemble", default="orchestra")
    ap.add_argument("--only", choices=("master", "perform"))
    args = ap.parse_args()
    if args.only in (None, "master"):
        if args.mix:
            import soundfile as sf
            data, sr = sf.read(args.mix, dtype="float32", always_2d=True)
            audio = np.ascontiguousarray(data.T)
        else:
            audio, sr = synthetic_mix(), SR
        bench_master(audio, sr, args.ensemble)
    if args.only in (None, "perform"):
        bench_perform()


if __name__ == "__main__":
    main()
