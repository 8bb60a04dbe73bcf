"""score2audio end-to-end benchmark (``make bench``): our render beside FluidSynth and MuseScore.

Each case is rendered by the README's command with its defaults (``score2audio render SCORE``:
parse → perform → stems → mix → master → files) in a process of its own, and again with
``--mix-stems`` (each instrument's part of the mix written too), and in the same run by the two
references:

- ``fluidsynth -ni -F out.wav SOUNDFONT performance.mid`` on the performance.mid we wrote: the
  floor for synthesis alone (no mixing, mastering or second file);
- ``mscore3 -o out.wav SCORE`` (MuseScore 3's audio export), when it is installed.

One table: wall time per stage (from the default render's report.json), audio seconds per wall
second (real-time factor), peak resident memory (``wait4``'s ``ru_maxrss`` of the process), the
``--mix-stems`` render's time and memory, the references' times and the ratios the targets are
set on. Every timed command runs ``--repeat`` times (default 2, each of ours from a cold cache)
and the best time counts, with the peak memory of that run. The machine may be shared: only
the ratios of one run mean much, so the load average is printed with them.

Before the cases, one short render warms up (untimed): the compiled kernels are built on the
first run of a machine or a fresh clone.

Cases: Beethoven's Große Fuge op. 133 (music21's corpus); a generated 30-part orchestral score
(:mod:`orchestra_score`, fixed seed) at 5 and 10 minutes, to show the cost growing linearly with
the length and the memory staying flat; the demo portfolio (``score2audio portfolio``, cold,
then warm).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from orchestra_score import write_orchestra_score  # noqa: E402

CASES = ("grosse-fuge", "orchestra-5", "orchestra-10", "portfolio")
#: stage columns: report.json's timing keys summed into each
STAGES = {"parse": ("load",), "perform": ("perform", "assign"), "render": ("render",),
          "mix": ("mix",), "master": ("master",), "export": ("export", "report")}
#: targets, as ratios taken in the same run
TARGET_VS_MUSESCORE = 0.5
TARGET_AFTER_PARSE_VS_FLUIDSYNTH = 1.5
TARGET_PEAK_MB = 1024


@dataclass
class Run:
    """One timed process: wall seconds and peak resident memory in MB."""

    wall_s: float
    peak_mb: float
    ok: bool = True
    error: str = ""


@dataclass
class Row:
    case: str
    audio_s: float = 0.0
    stages: dict = field(default_factory=dict)
    ours: Run | None = None
    mix_stems: Run | None = None  # the same render with --mix-stems
    fluidsynth: Run | None = None
    musescore: Run | None = None


def timed(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None) -> Run:
    """Run ``cmd`` to the end; its wall time and peak RSS (children included). What earlier
    runs left for the system to write out is written first, untimed: no program here forces
    its files to the disk, and none should be timed writing back another's."""
    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    err = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    ok = proc.returncode == 0
    return Run(round(wall, 2), round(usage.ru_maxrss / 1024, 1), ok,
               "" if ok else (err.strip().splitlines() or ["exit %d" % proc.returncode])[-1])


def python_env(cache: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    env["SCORE2AUDIO_CACHE"] = str(cache)
    return env


def render(score: Path, out: Path, cache: Path, *, mix_stems: bool = False,
           cold: bool = True) -> tuple[Run, Path | None]:
    """``score2audio render`` into ``out`` as the README shows it (``mix_stems``: with
    ``--mix-stems``), from a cold cache unless not ``cold``: the run and the piece's folder."""
    if cold:  # nothing parsed or calibrated yet
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "pipeline.cli", "render", str(score), "--out", str(out), "-q",
           *(["--mix-stems"] if mix_stems else [])]
    run = timed(cmd, env=python_env(cache))
    reports = list(out.glob("*/report.json"))
    return run, reports[0].parent if run.ok and reports else None


def best(runs: list[Run]) -> Run:
    """The fastest run that succeeded (else the last)."""
    ok = [r for r in runs if r.ok]
    return min(ok, key=lambda r: r.wall_s) if ok else runs[-1]


def fluidsynth(midi: Path, soundfont: str, work: Path) -> Run | None:
    if not shutil.which("fluidsynth"):
        return None
    return timed(["fluidsynth", "-ni", "-F", str(work / "fluidsynth.wav"), soundfont, str(midi)])


def musescore(score: Path, work: Path) -> Run | None:
    exe = shutil.which("mscore3") or shutil.which("mscore")
    if not exe:
        return None
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return timed([exe, "-o", str(work / "musescore.wav"), str(score)], env=env)


def score_for(case: str, work: Path) -> Path:
    if case == "grosse-fuge":
        from music21 import corpus
        return Path(corpus.getWork("beethoven/opus133"))
    minutes = float(case.split("-")[1])
    return write_orchestra_score(work / "scores" / f"orchestra-{minutes:g}min.musicxml", minutes)


def bench_case(case: str, work: Path, *, warm: bool, references: bool,
               repeat: int) -> list[Row]:
    """The case's default render (best of ``repeat``, each cold), its ``--mix-stems`` render
    and the references, alternating (a slower minute of the machine's shares them out); with
    ``warm``, once more with the caches full."""
    score = score_for(case, work)
    cache, out = work / f"cache-{case}", work / f"out-{case}"
    ours, stems, fs, ms = [], [], [], []
    stages, audio_s = {}, 0.0
    for _ in range(repeat):
        run, folder = render(score, out, cache)
        ours.append(run)
        if folder is not None:
            report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
            audio_s = report["duration_s"]
            if run is best(ours):
                t = report["timings_s"]
                stages = {k: round(sum(t.get(s, 0.0) for s in keys), 2)
                          for k, keys in STAGES.items()}
            if references:
                fs.append(fluidsynth(folder / "performance.mid", report["soundfont"], work))
        stems.append(render(score, out, cache, mix_stems=True)[0])
        if references:
            ms.append(musescore(score, work))
        # GBs of stems and references: keep the disk for the next case
        shutil.rmtree(out, ignore_errors=True)
        for name in ("fluidsynth.wav", "musescore.wav"):
            (work / name).unlink(missing_ok=True)
    fs, ms = [r for r in fs if r is not None], [r for r in ms if r is not None]
    rows = [Row(f"{case} (cold)" if warm else case, audio_s, stages, best(ours), best(stems),
                best(fs) if fs else None, best(ms) if ms else None)]
    if warm:  # the caches full from the last cold render
        run, _ = render(score, out, cache, cold=False)
        shutil.rmtree(out, ignore_errors=True)
        rows.append(Row(f"{case} (warm)", audio_s, ours=run))
    return rows


def bench_portfolio(work: Path) -> list[Row]:
    """``score2audio portfolio`` over scores/ cold (empty site and cache), then warm (everything
    already rendered)."""
    cache, site = work / "cache-portfolio", work / "site"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    rows = []
    for label in ("cold", "warm"):
        cmd = [sys.executable, "-m", "pipeline.cli", "portfolio", str(ROOT / "scores"),
               "--out", str(site), "-q"]
        run = timed(cmd, env=python_env(cache))
        rows.append(Row(f"portfolio ({label})", ours=run))
    shutil.rmtree(site, ignore_errors=True)
    return rows


def warm_up(work: Path) -> None:
    """One short render, untimed: the compiled kernels are built on a machine's (or a fresh
    clone's) first run and cached beside the package; the cases measure the pipeline, not
    the compiler."""
    t0 = time.perf_counter()
    score = ROOT / "scores" / "orchestra-morning-on-the-fell.musicxml"
    run, _ = render(score, work / "out-warm-up", work / "cache-warm-up", mix_stems=False)
    shutil.rmtree(work / "out-warm-up", ignore_errors=True)
    state = "ok" if run.ok else f"FAILED: {run.error}"
    print(f"  warm-up render (kernels compiled if not cached yet): "
          f"{time.perf_counter() - t0:.1f} s, {state}", file=sys.stderr, flush=True)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _f(x: float | None, fmt: str = "{:.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def print_table(rows: list[Row]) -> None:
    head = (f"{'case':22s} {'audio':>7s} │ " + " ".join(f"{s:>7s}" for s in STAGES)
            + f" │ {'total':>7s} {'RTF':>5s} {'peak':>7s} │ {'+stems':>7s} {'peak':>7s}"
            f" │ {'fluidsyn':>8s} {'mscore3':>8s}"
            f" │ {'÷mscore':>7s} {'+stems÷ms':>9s} {'after-parse÷fs':>14s}")
    print(head)
    print("─" * len(head))
    for r in rows:
        if not r.ours.ok:
            print(f"{r.case:22s} FAILED: {r.ours.error}")
            continue
        total = r.ours.wall_s
        after_parse = sum(v for k, v in r.stages.items() if k != "parse") if r.stages else None
        fs = r.fluidsynth.wall_s if r.fluidsynth and r.fluidsynth.ok else None
        ms = r.musescore.wall_s if r.musescore and r.musescore.ok else None
        stage_cols = " ".join(_f(r.stages.get(s), "{:7.1f}") for s in STAGES) if r.stages else \
            " ".join(f"{'':>7s}" for _ in STAGES)
        st = r.mix_stems.wall_s if r.mix_stems and r.mix_stems.ok else None
        st_mb = r.mix_stems.peak_mb if r.mix_stems and r.mix_stems.ok else None
        print(f"{r.case:22s} {_f(r.audio_s or None, '{:6.0f}s')} │ {stage_cols} │ "
              f"{total:6.1f}s {_f(r.audio_s / total if r.audio_s else None, '{:5.1f}')} "
              f"{r.ours.peak_mb:5.0f}MB │ {_f(st, '{:6.1f}s')} {_f(st_mb, '{:5.0f}MB')} │ "
              f"{_f(fs, '{:7.1f}s')} {_f(ms, '{:7.1f}s')} │ "
              f"{_f(total / ms if ms else None, '{:6.2f}×')} "
              f"{_f(st / ms if ms and st else None, '{:8.2f}×')} "
              f"{_f(after_parse / fs if fs and after_parse else None, '{:13.2f}×')}")
    print(f"\ntargets: the README's command ≤ {TARGET_VS_MUSESCORE}× mscore3's export; everything "
          f"after parsing ≤ {TARGET_AFTER_PARSE_VS_FLUIDSYNTH}× bare fluidsynth; peak < "
          f"{TARGET_PEAK_MB} MB.  total: `score2audio render SCORE` (the README's command, no "
          f"mix stems); +stems: with --mix-stems; best of --repeat runs, each from a cold cache. "
          f"RTF: audio seconds per wall second; peak: resident memory (fluidsynth's and "
          f"mscore3's in the JSON).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated, from: {', '.join(CASES)}")
    ap.add_argument("--warm", action="store_true",
                    help="render each case a second time with the parse and calibration caches full")
    ap.add_argument("--no-references", action="store_true", help="skip fluidsynth and mscore3")
    ap.add_argument("--repeat", type=int, default=2, metavar="N",
                    help="runs of each timed command; the best counts (default 2)")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="score2audio-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"score2audio bench · {os.cpu_count()} cores · load average {load_average()} · {work}",
          flush=True)
    warm_up(work)
    rows: list[Row] = []
    try:
        for case in cases:
            if case == "portfolio":
                rows += bench_portfolio(work)
            else:
                rows += bench_case(case, work, warm=args.warm, references=not args.no_references,
                                   repeat=max(1, args.repeat))
            print(f"  done: {case} (load average {load_average()})", file=sys.stderr, flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(rows)
    print(f"load average at the end: {load_average()}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")


if __name__ == "__main__":
    main()
