"""Shared helpers: rendering once per session, an independent meter, and pitch measurement."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.run.recipe import render_score

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SCORES = ROOT / "scores"
FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
MUSESCORE = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")


@pytest.fixture(scope="session", autouse=True)
def calibration_cache(tmp_path_factory):
    """The balance calibration's cache lives in a temporary folder, not the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("calibration-cache")
    old = os.environ.get("SCORE2AUDIO_CACHE")
    os.environ["SCORE2AUDIO_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("SCORE2AUDIO_CACHE", None)
    else:
        os.environ["SCORE2AUDIO_CACHE"] = old


@pytest.fixture(scope="session")
def render_once(tmp_path_factory):
    """``render_once(score, **options)`` renders each (score, options) once per session."""
    cache: dict = {}

    def render(score: Path, **options):
        key = (str(score), tuple(sorted(options.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp("out")
            cache[key] = render_score(score, out_root=out, **options)
        return cache[key]

    return render


def score_file(tmp_path_factory, name: str, text: str) -> Path:
    """``text`` (a score made by a test) written to ``<name>.musicxml`` in a folder of its own."""
    path = tmp_path_factory.mktemp(name) / f"{name}.musicxml"
    path.write_text(text, encoding="utf-8")
    return path


def ffmpeg_ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) measured by ffmpeg's ebur128 filter."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (make test installs it)")
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af",
                           "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True)
    summary = proc.stderr[proc.stderr.rfind("Summary:"):]
    lufs = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.inf]+) dBFS", summary).group(1))
    return lufs, peak


def ffmpeg_loudness_range(path: Path) -> float:
    """Loudness range (LRA, LU) measured by ffmpeg's ebur128 filter."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (make test installs it)")
    proc = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af",
                           "ebur128", "-f", "null", "-"], capture_output=True, text=True)
    summary = proc.stderr[proc.stderr.rfind("Summary:"):]
    return float(re.search(r"LRA:\s+(-?[\d.]+) LU", summary).group(1))


def _spectrum(audio: np.ndarray) -> tuple[np.ndarray, int]:
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    mono = mono * np.hanning(len(mono))
    n = 1 << int(np.ceil(np.log2(len(mono))) + 2)
    return np.abs(np.fft.rfft(mono, n)), n


def _refine(mag: np.ndarray, k: int) -> float:
    a, b, c = np.log(mag[k - 1: k + 2] + 1e-12)
    return k + 0.5 * (a - c) / (a - 2 * b + c)


def dominant_hz(audio: np.ndarray, sample_rate: int) -> float:
    """Frequency of the strongest spectral peak (parabolic interpolation), mono sum."""
    mag, n = _spectrum(audio)
    return _refine(mag, int(np.argmax(mag[1:])) + 1) * sample_rate / n


def fundamental_hz(audio: np.ndarray, sample_rate: int, *, max_harmonic: int = 6) -> float:
    """The pitch heard: the lowest f = peak/k (k ≤ ``max_harmonic``) with a real spectral peak
    of its own (at least 1/20 of the strongest), so a clarinet's loud 3rd harmonic or an oboe's
    2nd does not pass for the note."""
    mag, n = _spectrum(audio)
    peak = int(np.argmax(mag[1:])) + 1
    for k in range(max_harmonic, 0, -1):
        centre = peak / k
        lo, hi = int(centre * 0.97), int(np.ceil(centre * 1.03)) + 1
        if centre * sample_rate / n < 30 or lo < 1:
            continue
        local = lo + int(np.argmax(mag[lo:hi]))
        if mag[local] >= mag[peak] / 20 and 0 < local < len(mag) - 1:
            return _refine(mag, local) * sample_rate / n
    return _refine(mag, peak) * sample_rate / n


def read(path: Path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), sr


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, cwd=cwd)
