"""Every score in a folder through ``score2audio perform`` (``make corpus CORPUS=dir``): one
line per file and a summary, for trying the reader on real exports from notation programs.

Each file is performed by the real command in a process of its own (a broken file cannot take
the others down; a file that takes longer than ``--timeout`` seconds is stopped), two at a
time. A line says what became of the file:

- ``ok``        — performed: tracks, notes, seconds; ``warnings: N`` when the command warned;
- ``no notes``  — the one-line error for a score with nothing to play;
- ``error``     — another one-line error (a broken or unsupported file), with its words;
- ``INTERNAL``  — an internal error (a bug: these are what the corpus is for);
- ``TIMEOUT``   — stopped after ``--timeout`` seconds;
- ``RAW``       — (beside any status) the command printed a line that is not its own
  ("score2audio: …"): a library's message reached the console.

``tests/corpus-no-notes.toml`` lists the real exports that rightly have no notes, each with
why: a ``no notes`` not on it ends ``NO NOTES?``, and a file on it that plays, ``PLAYS?``.

``.xml`` files that are not MusicXML scores (their root is not ``score-partwise`` or
``score-timewise``: schemas, catalogues) are skipped and counted. The exit status is 1 when a
file ends INTERNAL, TIMEOUT, NO NOTES?, PLAYS? or RAW, else 0.

usage: python scripts/corpus.py DIR [--jobs N] [--timeout S] [--only WORD]
"""
from __future__ import annotations

import argparse
import os
import tomllib
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

SUFFIXES = {".musicxml", ".xml", ".mxl", ".mid", ".midi"}
ROOTS = re.compile(rb"<score-(partwise|timewise)\b")
PERFORMED = re.compile(r": (\d+) tracks, (\d+) notes, ([\d.]+) s$")
BAD = ("INTERNAL", "TIMEOUT", "NO NOTES?", "PLAYS?")
ROOT = Path(__file__).resolve().parents[1]
NO_NOTES = ROOT / "tests" / "corpus-no-notes.toml"


def known_without_notes(path: Path) -> set[str]:
    """The path endings of the exports that rightly have no notes (every table's keys)."""
    with open(path, "rb") as fh:
        return {name for table in tomllib.load(fh).values() for name in table}


def expected(outcome: "Outcome", no_notes: set[str]) -> "Outcome":
    """The outcome, marked where it contradicts the list of exports without notes."""
    listed = any(outcome.path.as_posix().endswith("/" + name) for name in no_notes)
    if outcome.status == "no notes" and not listed:
        return replace(outcome, status="NO NOTES?")
    if outcome.status == "ok" and listed:
        return replace(outcome, status="PLAYS?")
    return outcome


@dataclass(frozen=True)
class Outcome:
    path: Path
    status: str
    detail: str
    seconds: float
    warnings: int
    raw: tuple[str, ...]


def scores(folder: Path) -> tuple[list[Path], int]:
    """The score files under ``folder`` and how many ``.xml`` files were not scores."""
    found, skipped = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()):
        if path.suffix.lower() == ".xml":
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
            if not ROOTS.search(head) and not ROOTS.search(head.decode("utf-16", "ignore")
                                                            .encode("utf-8", "ignore")):
                skipped += 1
                continue
        found.append(path)
    return found, skipped


def perform(path: Path, out: Path, timeout_s: float) -> Outcome:
    cmd = [sys.executable, "-m", "pipeline.cli", "perform", str(path), "-o", str(out)]
    t0 = time.perf_counter()
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:
        return Outcome(path, "TIMEOUT", f"stopped after {timeout_s:g} s", timeout_s, 0, ())
    seconds = time.perf_counter() - t0
    lines = [l for l in (run.stdout + run.stderr).splitlines() if l.strip()]
    ours = [l for l in lines if l.startswith("score2audio:") or PERFORMED.search(l)]
    raw = tuple(l for l in lines if l not in ours)
    warnings = sum(1 for l in ours if l.startswith("score2audio: WARNING"))
    errors = [l.removeprefix("score2audio: error: ") for l in ours
              if l.startswith("score2audio: error:")]
    if run.returncode == 0:
        found = next((PERFORMED.search(l) for l in ours if PERFORMED.search(l)), None)
        detail = (f"{found[1]} tracks, {found[2]} notes, {float(found[3]):.1f} s" if found
                  else "performed")
        return Outcome(path, "ok", detail, seconds, warnings, raw)
    if errors:
        status = "no notes" if "has no notes to play" in errors[-1] else "error"
        return Outcome(path, status, errors[-1], seconds, warnings, raw)
    internal = [l for l in ours if "internal error" in l]
    return Outcome(path, "INTERNAL", (internal or lines or ["(nothing said)"])[-1], seconds,
                   warnings, raw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds a file may take")
    ap.add_argument("--only", help="only files whose path contains this")
    ap.add_argument("--no-notes", type=Path, default=NO_NOTES,
                    help="the list of exports that rightly have no notes")
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        print(f"corpus: {args.folder}: no such folder", file=sys.stderr)
        return 2
    files, skipped = scores(args.folder)
    if args.only:
        files = [f for f in files if args.only in str(f)]
    no_notes = known_without_notes(args.no_notes)
    os.chdir(ROOT)  # the checkout's own package, whatever the caller's folder
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="score2audio-corpus-") as tmp, \
            ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(perform, f, Path(tmp) / f"{i}.mid", args.timeout)
                for i, f in enumerate(files)]
        outcomes = []
        for job in jobs:
            o = expected(job.result(), no_notes)
            outcomes.append(o)
            flags = (f"  warnings: {o.warnings}" if o.warnings else "") + \
                    (f"  RAW: {o.raw[0][:120]}" if o.raw else "")
            print(f"{o.status:<9} {o.path.relative_to(args.folder)}  {o.detail[:160]}"
                  f"  ({o.seconds:.1f} s){flags}", flush=True)
    counts = {s: sum(1 for o in outcomes if o.status == s)
              for s in ("ok", "no notes", "error", *BAD)}
    raw = sum(1 for o in outcomes if o.raw)
    warned = sum(1 for o in outcomes if o.warnings)
    print(f"{len(outcomes)} files in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{n} {s}" for s, n in counts.items())
          + f"; {warned} with warnings, {raw} RAW; {skipped} .xml files that are not scores "
            f"skipped")
    return 1 if any(counts[s] for s in BAD) or raw else 0


if __name__ == "__main__":
    sys.exit(main())
