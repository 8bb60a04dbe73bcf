"""Property: whatever bytes a score file holds, the loader either reads it or raises the
project's own ScoreError, never anything else, and never hangs."""
from __future__ import annotations

import io
import re
import resource
import signal
import tempfile
import zipfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from conftest import DATA, SCORES
from pipeline.errors import ScoreError
from pipeline.score.load import load

hypothesis = pytest.importorskip("hypothesis", reason="a test dependency: make test-deps")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SUFFIXES = [".musicxml", ".xml", ".mxl", ".mid", ".midi"]
#: A hang is a failure: no example may take longer, however slow the machine.
HANG_S = 30


def _mxl(xml: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="'
                   'score.musicxml"/></rootfiles></container>')
        z.writestr("score.musicxml", xml)
    return buf.getvalue()


SEEDS = {
    ".musicxml": [(DATA / name).read_bytes() for name in
                  ("single-a4.musicxml", "two-bars-repeated.musicxml", "tuplets.musicxml")],
    ".mid": [(SCORES / "clarinet-and-bass.mid").read_bytes()],
}
SEEDS[".mxl"] = [_mxl(x) for x in SEEDS[".musicxml"][:2]]

FUZZ = settings(max_examples=90, deadline=timedelta(seconds=10), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Hang(BaseException):  # not an Exception: the loader turns those into ScoreError
    pass


#: Memory one example may take beyond what the process already has: a loader that runs away
#: fails the test with MemoryError instead of pushing the machine into its OOM killer.
SPARE_BYTES = 4 << 30


@contextmanager
def no_hang():
    def alarm(_signum, _frame):
        raise Hang(f"the loader took more than {HANG_S} s")

    old = signal.signal(signal.SIGALRM, alarm)
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:  # the address space in use now, in pages
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (in_use + SPARE_BYTES, old_limit[1]))
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, old_limit)
        signal.signal(signal.SIGALRM, old)


def load_bytes(data: bytes, suffix: str) -> None:
    """Load ``data`` as a file named with ``suffix``: it is read, or refused with ScoreError."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        path = Path(folder) / f"score{suffix}"
        path.write_bytes(data)
        with no_hang():
            try:
                load(path)
                event(f"{suffix}: read")
            except ScoreError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
                event(f"{suffix}: refused")


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(data, suffix):
    load_bytes(data, suffix)


# a mutation: (what, where as a fraction of the length, bytes); single-byte flips and changed
# numbers (durations, divisions, octaves, tick deltas) mostly keep a file readable, so they
# reach the parsers' deeper code; the others mostly break the file's structure
MUTATION = st.tuples(st.sampled_from(["flip"] * 3 + ["number"] * 3 +
                                     ["insert", "delete", "truncate", "repeat"]),
                     st.floats(0.0, 1.0), st.binary(min_size=1, max_size=64))
ODD_NUMBERS = [b"0", b"-1", b"-0", b"99999999", b"4294967296", b"1e308", b"nan", b"", b"0.0001"]


def mutate(data: bytes, mutations) -> bytes:
    out = bytearray(data)
    for what, where, blob in mutations:
        at = min(int(where * len(out)), max(len(out) - 1, 0))
        if what == "flip" and out:
            out[at] ^= blob[0] or 1
        elif what == "number":
            numbers = list(re.finditer(rb"\d+", bytes(out)))
            if numbers:
                m = numbers[min(int(where * len(numbers)), len(numbers) - 1)]
                out[m.start():m.end()] = ODD_NUMBERS[blob[0] % len(ODD_NUMBERS)]
        elif what == "insert":
            out[at:at] = blob
        elif what == "delete":
            del out[at:at + len(blob)]
        elif what == "truncate":
            del out[at:]
        else:  # a stretch copied again: duplicated elements, tracks, lengths
            out[at:at] = out[at:at + 16 * len(blob)]
    return bytes(out)


@FUZZ
@given(kind=st.sampled_from(sorted(SEEDS)), which=st.integers(0, 2),
       mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_scores(kind, which, mutations):
    seeds = SEEDS[kind]
    suffix = kind if kind != ".mid" else ".midi"
    load_bytes(mutate(seeds[which % len(seeds)], mutations), suffix)
