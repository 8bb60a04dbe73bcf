"""What a soundfont preset can play: the keys and velocities its zones cover.

The one module that reads a SoundFont's internals (the ``pdta`` chunk, the same in SF2 and SF3:
presets → preset zones → instruments → instrument zones, each zone limited by its ``keyRange``
and ``velRange`` generators). A note sounds where some preset zone and some of its instrument's
zones with a sample both take its key and velocity (as FluidSynth's note-on picks them); where
none does, FluidSynth plays nothing. Read once per soundfont file and kept in the cache folder
(the same stamp as the voices' measurements: a replaced file is read again).
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import SoundfontError
from pipeline.files import file_stamp, read_cache, write_cache
from pipeline.paths import cache_folder

CACHE_VERSION = 2  # 2: with the presets' names
KEY_RANGE, VEL_RANGE, INSTRUMENT, SAMPLE_ID = 43, 44, 41, 53  # SoundFont 2.04 generators
#: the records of the pdta chunk: (name, record size in bytes)
_RECORDS = {"phdr": 38, "pbag": 4, "pgen": 4, "inst": 22, "ibag": 4, "igen": 4}


@dataclass(frozen=True)
class Coverage:
    """The keys × velocities a preset plays: ``cells[key, velocity]`` (128 × 128 booleans),
    and the preset's name."""

    cells: np.ndarray
    name: str = ""

    def covers(self, keys: np.ndarray, velocities: np.ndarray) -> np.ndarray:
        """For each note, whether a zone plays it (vectorised)."""
        k = np.clip(np.asarray(keys, dtype=np.int64), 0, 127)
        v = np.clip(np.asarray(velocities, dtype=np.int64), 0, 127)
        return self.cells[k, v]

    @property
    def empty(self) -> bool:
        return not self.cells.any()


def coverage(soundfont: Path, bank: int, program: int) -> Coverage:
    """The keys and velocities preset ``bank``:``program`` of ``soundfont`` plays (none when
    the file has no such preset)."""
    zones = _zones(str(Path(soundfont).resolve()), file_stamp(Path(soundfont)))
    name, spans = zones.get(f"{bank}:{program}", ("", []))
    cells = np.zeros((128, 128), dtype=bool)
    for k0, k1, v0, v1 in spans:
        cells[k0:k1 + 1, v0:v1 + 1] = True
    return Coverage(cells, name)


_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _zones(path: str, stamp: str) -> dict[str, tuple[str, list]]:
    """Every preset's name and covered rectangles ``(key lo, key hi, velocity lo, velocity
    hi)``, by ``"bank:program"``: from the cache file, else read from the soundfont and
    cached."""
    cache = cache_folder() / "soundfont-zones.json"
    key = f"{path}|{stamp}|{CACHE_VERSION}"
    with _lock:
        data = read_cache(cache)
        if isinstance(data.get(key), dict):
            try:
                return {k: (str(v[0]), [tuple(int(x) for x in r) for r in v[1]])
                        for k, v in data[key].items()}
            except (TypeError, ValueError, IndexError):
                pass  # a damaged cache: it is only a cache, read the soundfont again
        zones = read_zones(Path(path))
        data = {k: v for k, v in data.items() if not k.startswith(f"{path}|")}
        data[key] = zones
        write_cache(cache, data, "soundfont zones")
        return zones


def read_zones(path: Path) -> dict[str, tuple[str, list[tuple[int, int, int, int]]]]:
    """Read the pdta chunk of ``path`` (see :func:`_zones` for what is returned).

    Raises
    ------
    SoundfontError
        When the file is not a SoundFont or its preset data is damaged.
    """
    chunks = _pdta(path)
    phdr = np.frombuffer(chunks["phdr"], dtype=np.dtype([
        ("name", "S20"), ("preset", "<u2"), ("bank", "<u2"), ("bag", "<u2"),
        ("library", "<u4"), ("genre", "<u4"), ("morphology", "<u4")]))
    pbag = np.frombuffer(chunks["pbag"], dtype=np.dtype([("gen", "<u2"), ("mod", "<u2")]))
    inst = np.frombuffer(chunks["inst"], dtype=np.dtype([("name", "S20"), ("bag", "<u2")]))
    ibag = np.frombuffer(chunks["ibag"], dtype=np.dtype([("gen", "<u2"), ("mod", "<u2")]))
    gen = np.dtype([("op", "<u2"), ("lo", "u1"), ("hi", "u1")])  # a range is two bytes
    pgen = np.frombuffer(chunks["pgen"], dtype=gen)
    igen = np.frombuffer(chunks["igen"], dtype=gen)
    if min(len(phdr), len(pbag), len(inst), len(ibag)) < 1:
        raise SoundfontError(f"{path}: the soundfont's preset data is empty or damaged")

    def zone_list(bags, gens, first: int, last: int) -> list[tuple[int, int, int, int, int]]:
        """The zones ``first``…``last - 1`` of a list of bags: (key lo, key hi, vel lo, vel hi,
        instrument or sample index; -1 for a global zone)."""
        out = []
        for b in range(first, min(last, len(bags) - 1)):
            g = gens[int(bags["gen"][b]):int(bags["gen"][b + 1])]
            ops = g["op"]
            key = (0, 127)
            vel = (0, 127)
            target = -1
            for op, lo, hi in zip(ops.tolist(), g["lo"].tolist(), g["hi"].tolist()):
                if op == KEY_RANGE:
                    key = (lo, hi)
                elif op == VEL_RANGE:
                    vel = (lo, hi)
                elif op in (INSTRUMENT, SAMPLE_ID):
                    target = lo | (hi << 8)
            out.append((key[0], key[1], vel[0], vel[1], target))
        return out

    instruments = [zone_list(ibag, igen, int(inst["bag"][i]), int(inst["bag"][i + 1]))
                   for i in range(len(inst) - 1)]
    zones: dict[str, tuple[str, list[tuple[int, int, int, int]]]] = {}
    for p in range(len(phdr) - 1):  # the last header is the terminal "EOP"
        spans = []
        for k0, k1, v0, v1, i in zone_list(pbag, pgen, int(phdr["bag"][p]),
                                             int(phdr["bag"][p + 1])):
            if not 0 <= i < len(instruments):
                continue
            for a0, a1, b0, b1, sample in instruments[i]:
                lo, hi, vlo, vhi = max(k0, a0), min(k1, a1), max(v0, b0), min(v1, b1)
                if sample >= 0 and lo <= hi and vlo <= vhi:
                    spans.append((lo, hi, vlo, vhi))
        name = f"{int(phdr['bank'][p])}:{int(phdr['preset'][p])}"
        title = phdr["name"][p].split(b"\0")[0].decode("latin-1").strip()
        zones.setdefault(name, (title, spans))  # of two presets with one number, the first
    return zones


def _pdta(path: Path) -> dict[str, bytes]:
    """The records of the ``LIST pdta`` chunk, by name (the sample data is skipped, not read)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
                raise SoundfontError(f"{path}: not a SoundFont file (no RIFF sfbk header)")
            end = 8 + int.from_bytes(head[4:8], "little")
            pos = 12
            while pos + 12 <= end:
                fh.seek(pos)
                chunk = fh.read(12)
                size = int.from_bytes(chunk[4:8], "little")
                if chunk[:4] == b"LIST" and chunk[8:12] == b"pdta":
                    return _subchunks(path, fh.read(size - 4))
                pos += 8 + size + (size & 1)
    except OSError as exc:
        raise SoundfontError(f"{path}: soundfont cannot be read ({exc.strerror})") from exc
    raise SoundfontError(f"{path}: the soundfont has no preset data (no LIST pdta chunk)")


def _subchunks(path: Path, data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = 0
    while pos + 8 <= len(data):
        name = data[pos:pos + 4].decode("latin-1")
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        out[name] = data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    for name, record in _RECORDS.items():
        if name not in out or len(out[name]) % record:
            raise SoundfontError(f"{path}: the soundfont's preset data is damaged ('{name}')")
    return out
