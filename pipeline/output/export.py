"""Export stage: performance.mid, mix.wav, the master and report.json in the piece's folder.

A piece is assembled in a hidden folder beside its final place and moved into place only when
complete, so an interrupted run never leaves a folder (or file) that looks finished.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from pipeline.dsp import kernels
from pipeline.dsp.audio import BLOCK_FRAMES, db_to_gain, requantize
from pipeline.files import AudioOut, atomic_path, umask
from pipeline.settings.config import LOSSY_FORMATS, Preset
from pipeline.errors import OutputError
from pipeline.dsp.loudness import integrated_lufs, true_peak_dbtp
from pipeline.model import BarTime, Mix, Timemap
from pipeline.output.piece_report import MixFileReport, PieceReport, as_json

SUBTYPES = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
MP3_QUALITY = 2  # LAME's -q 2: near-best encoding, about 60× real time here
LOSSY_RETRIES = 4


def write_audio(path: Path, audio: np.ndarray, sample_rate: int, *, bit_depth: int = 24,
                fmt: str = "wav", tags: dict | None = None,
                progress: Callable[[int], None] | None = None) -> None:
    """Write (channels, frames) float audio atomically. Integer formats get integers computed
    here (exact for a master already on the format's grid) rather than libsndfile's scaling,
    block by block (no whole-length copies); ``progress(frames)`` after each block: how far
    ``audio`` has been read."""
    integer = fmt in ("wav", "flac") and bit_depth in (16, 24)
    # a 24-bit WAV's data are written as bytes packed here: libsndfile's own packing of
    # 32-bit integers costs several times the rest of the write
    packed = fmt == "wav" and bit_depth == 24
    with atomic_path(path) as tmp, AudioOut(tmp, sample_rate, audio.shape[0],
                                            subtype=SUBTYPES[bit_depth], format=fmt.upper()) as f:
        _tag(f.file, tags)
        for start in range(0, audio.shape[1], BLOCK_FRAMES):
            block = audio[:, start:start + BLOCK_FRAMES]
            if packed:
                f.write_raw(kernels.to_pcm24_bytes(block))
            elif integer:
                f.write(kernels.to_pcm(block, bit_depth))
            else:
                f.write(block.T)
            if progress is not None:
                progress(start + block.shape[1])


def _tag(f: sf.SoundFile, tags: dict | None) -> None:
    for key, value in (tags or {}).items():
        if value:
            setattr(f, key, str(value))


def write_lossy(path: Path, audio: np.ndarray, sample_rate: int, preset: Preset,
                tags: dict | None) -> dict:
    """Encode MP3 (LAME via lameenc, constant bit rate) or Ogg Vorbis (libsndfile), decode it back
    and check its true peak against the preset's ceiling; if the codec pushed it over, encode
    again a little lower. Returns what was measured on the decoded file."""
    fmt = path.suffix[1:]
    codec = (f"MP3 {preset.mp3_kbps} kbit/s CBR (LAME)" if fmt == "mp3"
             else f"Ogg Vorbis quality {preset.ogg_quality:g}")
    trim_db = 0.0
    for _ in range(LOSSY_RETRIES):
        # the first encode takes the master as it is: no whole-length copy unless trimmed
        scaled = audio if trim_db == 0.0 else audio * np.float32(db_to_gain(trim_db))
        with atomic_path(path) as tmp:
            if fmt == "mp3":
                _encode_mp3(tmp, scaled, sample_rate, preset.mp3_kbps, tags)
            else:
                _encode_vorbis(tmp, scaled, sample_rate, preset.ogg_quality, tags)
            decoded, _ = sf.read(str(tmp), dtype="float32", always_2d=True)
        tp = true_peak_dbtp(decoded.T, sample_rate)
        if tp <= preset.ceiling_dbtp:
            break
        trim_db -= tp - preset.ceiling_dbtp + 0.1
    return {"file": path.name, "codec": codec, "decoded_true_peak_dbtp": round(tp, 2),
            "decoded_lufs": round(integrated_lufs(decoded.T, sample_rate), 2),
            "codec_trim_db": round(trim_db, 2)}


def _encode_mp3(path: Path, audio: np.ndarray, sample_rate: int, kbps: int, tags: dict | None) -> None:
    import lameenc
    from mutagen.id3 import COMM, ID3, TALB, TCOP, TIT2, TPE1, TSSE

    # LAME takes 16-bit PCM: the master is dithered down to it first (TPDF)
    pcm = requantize(audio, 16, dither=True)
    pcm *= np.float32(32768)  # in place: one whole-length float copy, not two
    pcm = pcm.astype(np.int16).T
    enc = lameenc.Encoder()
    enc.set_bit_rate(kbps)
    enc.set_in_sample_rate(sample_rate)
    enc.set_channels(audio.shape[0])
    enc.set_quality(MP3_QUALITY)
    with open(path, "wb") as f:
        for start in range(0, pcm.shape[0], BLOCK_FRAMES):
            f.write(enc.encode(np.ascontiguousarray(pcm[start:start + BLOCK_FRAMES]).tobytes()))
        f.write(enc.flush())
    frames = {"title": TIT2, "artist": TPE1, "album": TALB, "software": TSSE, "copyright": TCOP}
    id3 = ID3()
    for key, value in (tags or {}).items():
        if not value:
            continue
        if key == "comment":
            id3.add(COMM(encoding=3, lang="eng", desc="", text=str(value)))
        elif key in frames:
            id3.add(frames[key](encoding=3, text=str(value)))
    id3.save(str(path))


def _encode_vorbis(path: Path, audio: np.ndarray, sample_rate: int, quality: float,
                   tags: dict | None) -> None:
    with AudioOut(path, sample_rate, audio.shape[0], format="OGG", subtype="VORBIS",
                  compression_level=1.0 - quality) as f:
        _tag(f.file, tags)
        # libsndfile's Vorbis encoder crashes on very large writes: feed it in blocks
        for start in range(0, audio.shape[1], BLOCK_FRAMES):
            f.write(audio[:, start:start + BLOCK_FRAMES].T)
    _set_ogg_serial(path, zlib.crc32(np.ascontiguousarray(audio)))


def _set_ogg_serial(path: Path, serial: int) -> None:
    """Give every page of an Ogg file the stream serial number ``serial``. libsndfile draws it
    from the clock; one taken from the audio makes the same master the same file."""
    data = bytearray(path.read_bytes())
    pos = 0
    while data[pos:pos + 4] == b"OggS" and pos + 27 <= len(data):
        segments = data[pos + 26]
        end = pos + 27 + segments + sum(data[pos + 27:pos + 27 + segments])
        data[pos + 14:pos + 18] = serial.to_bytes(4, "little")
        data[pos + 22:pos + 26] = bytes(4)  # the checksum is taken with its own field zeroed
        data[pos + 22:pos + 26] = _ogg_crc(bytes(data[pos:end])).to_bytes(4, "little")
        pos = end
    if pos != len(data):
        raise OutputError(f"{path}: the Ogg encoder wrote an unreadable page at byte {pos}")
    path.write_bytes(data)


_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32 with polynomial 0x04C11DB7, not reflected, initial value and
    final XOR 0. That is zlib's reflected CRC-32 of the bit-reversed bytes, itself bit-reversed,
    with zlib's initial and final inversions undone, so it runs in C."""
    reflected = zlib.crc32(page.translate(_BIT_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def read_mix(folder: Path) -> np.ndarray:
    """The mix written by :func:`write_mix`, back as (2, frames) float32."""
    audio, _ = sf.read(str(folder / "mix.wav"), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T)


def write_mix(folder: Path, mix: Mix, progress: Callable[[int], None] | None = None) -> Path:
    path = folder / "mix.wav"
    write_audio(path, mix.audio, mix.sample_rate, bit_depth=24, progress=progress)
    return path


def write_master(folder: Path, audio: np.ndarray, sample_rate: int, preset: Preset, *,
                 several: bool = False, tags: dict | None = None) -> list[dict]:
    """Every file the preset asks for of a master's ``audio``; returns one entry per file
    (lossy ones with what was measured on the decoded audio)."""
    def one(fmt: str) -> dict:
        name = f"master-{preset.name}.{fmt}" if several else f"master.{fmt}"
        path = folder / name
        if fmt in LOSSY_FORMATS:
            return write_lossy(path, audio, sample_rate, preset, tags)
        write_audio(path, audio, sample_rate, bit_depth=preset.bit_depth, fmt=fmt, tags=tags)
        return {"file": name, "codec": f"{fmt.upper()} {preset.bit_depth}-bit"}

    # the encoders run in C without the GIL: MP3 and OGG are made side by side
    with ThreadPoolExecutor(min(2, len(preset.formats))) as pool:
        return list(pool.map(one, preset.formats))


def write_report(folder: Path, report: PieceReport | MixFileReport) -> Path:
    """``folder/report.json``: the report as plain JSON."""
    path = folder / "report.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(as_json(report), indent=2, ensure_ascii=False) + "\n",
                       encoding="utf-8")
    return path


TIMEMAP = "timemap.json"
TIMEMAP_FORMAT = 1


def write_timemap(folder: Path, timemap: Timemap) -> Path:
    """``folder/timemap.json``: where each played bar is heard in the audio, in play order
    (a bar repeated is listed once per pass), for a page that follows the score."""
    data = {"format": TIMEMAP_FORMAT, "lead_in_s": timemap.lead_in_s,
            "bars": [{"measure": b.measure, "number": b.number, "start_s": b.start_s,
                      "end_s": b.end_s} for b in timemap.bars]}
    path = folder / TIMEMAP
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n",
                       encoding="utf-8")
    return path


def read_timemap(path: Path) -> Timemap:
    """The timemap :func:`write_timemap` wrote (ValueError, KeyError or TypeError for another
    format or shape, OSError for a file that cannot be read)."""
    data = json.loads(path.read_text("utf-8"))
    if data.get("format") != TIMEMAP_FORMAT:
        raise ValueError(f"format {data.get('format')!r}, not {TIMEMAP_FORMAT}")
    return Timemap(float(data["lead_in_s"]), tuple(
        BarTime(int(b["measure"]), str(b["number"]), float(b["start_s"]), float(b["end_s"]))
        for b in data["bars"]))


class PieceFolder:
    """``out/<slug>/`` built in a hidden working folder and swapped into place on success."""

    def __init__(self, out_root: Path, slug: str):
        self.final = out_root / slug
        try:
            out_root.mkdir(parents=True, exist_ok=True)
            _remove_abandoned(out_root, slug)
            self.work = Path(tempfile.mkdtemp(prefix=f".{slug}.partial-{os.getpid()}-",
                                              dir=out_root))
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


def _remove_abandoned(out_root: Path, slug: str) -> None:
    """Remove the hidden folders of a render of ``slug`` that was killed (SIGKILL, power cut):
    those whose process is gone. A render still running keeps its own."""
    for folder in out_root.glob(f".{slug}.*"):
        owner = folder.name[len(slug) + 2:].replace("partial-", "").replace("old-", "")
        pid = owner.split("-")[0]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
