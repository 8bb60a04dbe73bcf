"""Export stage: performance.mid, mix.wav, the master and report.json in the piece's folder.

A piece is assembled in a hidden folder beside its final place and moved into place only when
complete, so an interrupted run never leaves a folder (or file) that looks finished.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import umask, atomic_path
from .config import Preset
from .errors import OutputError
from .model import Master, Mix

SUBTYPES = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}


def write_audio(path: Path, audio: np.ndarray, sample_rate: int, *, bit_depth: int = 24,
                fmt: str = "wav") -> None:
    """Write (channels, frames) float audio atomically."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio.T, sample_rate, subtype=SUBTYPES[bit_depth], format=fmt.upper())


def write_mix(folder: Path, mix: Mix) -> Path:
    path = folder / "mix.wav"
    write_audio(path, mix.audio, mix.sample_rate, bit_depth=24)
    return path


def write_master(folder: Path, master: Master, preset: Preset, *, several: bool = False) -> Path:
    name = f"master-{preset.name}.{preset.format}" if several else f"master.{preset.format}"
    path = folder / name
    write_audio(path, master.audio, master.sample_rate, bit_depth=preset.bit_depth, fmt=preset.format)
    return path


def write_report(folder: Path, report: dict) -> Path:
    path = folder / "report.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


class PieceFolder:
    """``out/<slug>/`` built in a hidden working folder and swapped into place on success."""

    def __init__(self, out_root: Path, slug: str):
        self.final = out_root / slug
        try:
            out_root.mkdir(parents=True, exist_ok=True)
            self.work = Path(tempfile.mkdtemp(prefix=f".{slug}.partial-", dir=out_root))
            self.work.chmod(0o777 & ~umask())
        except OSError as exc:
            raise OutputError(f"{out_root}: the output folder cannot be written ({exc.strerror})") from exc

    def commit(self) -> Path:
        old = None
        try:
            if self.final.exists():
                old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
                os.replace(self.final, old)
            os.replace(self.work, self.final)
        except OSError as exc:
            raise OutputError(f"{self.final}: cannot be written ({exc.strerror})") from exc
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
