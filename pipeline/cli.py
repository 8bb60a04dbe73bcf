"""The ``score2audio`` command. The only place that writes to the terminal."""
from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from pipeline import __version__
from pipeline.progress import MAX_DURATION_S, overall_fraction
from pipeline.errors import PipelineError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="score2audio",
        description="Turn a score (MusicXML or MIDI) into stems, a mix and a mastered recording.")
    p.add_argument("--version", action="version", version=f"score2audio {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("render", help="render a score to stems, mix and master")
    r.add_argument("scores", nargs="+", metavar="SCORE",
                   help="a .musicxml/.xml/.mxl or .mid/.midi file (several: each into its own folder)")
    r.add_argument("--out", default="out", metavar="DIR", help="output folder (default: out)")
    r.add_argument("--ensemble", metavar="NAME",
                   help="mix template (default: the score's sidecar's, else detected); see 'templates'")
    r.add_argument("--layout", metavar="NAME",
                   help="seating layout of the template (e.g. antiphonal; default: standard); "
                        "see 'templates'")
    r.add_argument("--preset", metavar="NAME[,NAME]",
                   help="delivery preset(s), comma-separated (default: the sidecar's, else "
                        "streaming); see 'presets'")
    r.add_argument("--soundfont", metavar="PATH", help="a .sf2/.sf3 file (default: MuseScore General)")
    r.add_argument("--reference", metavar="FILE",
                   help="a finished recording whose tonal balance and loudness the master should match")
    r.add_argument("--album", metavar="NAME", nargs="?", const="album",
                   help="master several scores as one album (one programme loudness)")
    r.add_argument("--swing", type=float, metavar="RATIO",
                   help="swing ratio for eighths where the score says nothing (2 = triplet feel, "
                        "1 = straight; default: the ensemble's, swung for a jazz band)")
    r.add_argument("--sample-rate", type=int, default=48000, metavar="HZ",
                   help="synthesis sample rate (default: 48000)")
    r.add_argument("--mix-stems", action=argparse.BooleanOptionalAction, default=False,
                   help="also write each instrument's part of the mix, its reverb included, to "
                        "mix-stems/, for remixing in a DAW (off by default: one room convolution "
                        "and one full-length file per player, the slowest part of a large "
                        "ensemble's render)")
    r.add_argument("--attack-compensation", action=argparse.BooleanOptionalAction, default=True,
                   help="start each note early by the time its sound takes to be heard, so it is "
                        "heard on the beat (on by default; performance.mid keeps the written "
                        "times either way)")
    _phrasing_option(r)
    r.add_argument("--bars", metavar="FIRST-LAST",
                   help="render only these bars, as played (e.g. 12-24; numbers as printed), "
                        "into <out>/<score>-bars-12-24/")
    r.add_argument("--pass", dest="pass_number", type=int, default=1, metavar="N",
                   help="with --bars: start on the N-th time the first bar is played (a repeat's "
                        "second pass: 2; default: 1)")
    r.add_argument("--loop", action="store_true",
                   help="with --bars: make the excerpt loop seamlessly (the room's tail folded "
                        "onto its start)")
    r.add_argument("--rehearsal", action="store_true",
                   help="also write rehearsal/<part>.mp3 for each part: that part louder and "
                        "centred, the others softer (made from the mix stems, which are written "
                        "too)")
    r.add_argument("--rehearsal-part-db", type=float, default=6.0, metavar="DB",
                   help="a rehearsal track's own part, against the mix (default: +6)")
    r.add_argument("--rehearsal-others-db", type=float, default=-6.0, metavar="DB",
                   help="the other parts in a rehearsal track, against the mix (default: -6)")
    r.add_argument("--count-in", action="store_true",
                   help="rehearsal tracks start with a bar of clicks at the opening tempo")
    r.add_argument("--vibrato", action=argparse.BooleanOptionalAction, default=True,
                   help="a modest vibrato on long notes of voices whose samples are straight, "
                        "where the style wants one: saxes, singers, a jazz band's brass (on by "
                        "default; see pipeline/data/vibrato.toml)")
    _humanize_options(r)
    _max_duration(r)
    _common(r)

    pf = sub.add_parser("perform", help="write the performance as MIDI without rendering audio")
    pf.add_argument("score", metavar="SCORE")
    pf.add_argument("-o", "--output", required=True, metavar="FILE.mid")
    pf.add_argument("--soundfont", metavar="PATH", help="soundfont whose programs are written")
    pf.add_argument("--swing", type=float, metavar="RATIO",
                    help="swing ratio for eighths where the score says nothing (default: straight)")
    pf.add_argument("--fermata-hold", type=_positive, metavar="FACTOR",
                    help="how many times its length a note under a fermata lasts (default: 2.0; "
                         "1.0 = not held, as MuseScore 3 plays, for comparing with its playback)")
    _phrasing_option(pf)
    _humanize_options(pf)
    _max_duration(pf)
    _common(pf)

    pt = sub.add_parser("portfolio", help="render a folder of scores and publish them as a web page")
    pt.add_argument("scores_dir", metavar="DIR", help="the folder of scores (searched recursively)")
    pt.add_argument("--out", default="site", metavar="SITE", help="the site folder (default: site)")
    pt.add_argument("--title", help="the site's title (default: portfolio.toml's title, else "
                    "Portfolio)")
    pt.add_argument("--soundfont", metavar="PATH", help="a .sf2/.sf3 file (default: MuseScore General)")
    pt.add_argument("--sample-rate", type=int, default=48000, metavar="HZ",
                    help="synthesis sample rate (default: 48000)")
    pt.add_argument("--jobs", type=int, metavar="N", help="pieces rendered at once (default: one "
                    "per CPU core)")
    pt.add_argument("--dask", metavar="ADDRESS", help="render on a Dask cluster, e.g. "
                    "tcp://scheduler:8786 (its workers must see DIR and SITE at the same paths)")
    _common(pt)

    ms = sub.add_parser("master", help="master a mix you bring (WAV, FLAC…) for delivery presets")
    ms.add_argument("mix", metavar="MIX", help="the mix: WAV or FLAC (mono or stereo, 44.1–192 kHz, "
                    "16/24/32-bit or float)")
    ms.add_argument("--preset", default="streaming", metavar="NAME[,NAME]",
                    help="delivery preset(s), comma-separated (default: streaming); see 'presets'")
    ms.add_argument("--out", default="out", metavar="DIR",
                    help="output folder: the masters and report go to DIR/<mix-name>/ "
                         "(default: out)")
    ms.add_argument("--reference", metavar="FILE",
                    help="a finished recording whose tonal balance and loudness the master should match")
    ms.add_argument("--ensemble", metavar="NAME",
                    help="master it as this ensemble's pieces are (its tonal target, glue and "
                         "dynamic-range guard); default: the presets' chain as written")
    _common(ms)

    mt = sub.add_parser("meter", help="measure audio files: integrated loudness, loudness range, "
                        "true peak, PLR (EBU R128)")
    mt.add_argument("files", nargs="+", metavar="FILE")
    mt.add_argument("--json", action="store_true", help="print JSON instead of a line per file")
    _common(mt)

    for name, what in (("templates", "ensemble mix templates"), ("presets", "delivery presets")):
        _common(sub.add_parser(name, help=f"list the {what}"))
    return p


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a positive number, not {text!r}")
    return value


def _phrasing_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phrasing", action=argparse.BooleanOptionalAction, default=True,
                   help="shape phrases as a player does: a slur rises to its peak note, a held "
                        "note swells, an accent falls back, the last note dies away (on by "
                        "default; see pipeline/data/phrasing.toml)")


def _humanize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--humanize", type=float, default=0.0, metavar="AMOUNT",
                   help="timing and velocity variation of the players, 0 (off, the default) to 1 "
                        "(about ±15 ms and ±6 velocity)")
    p.add_argument("--seed", type=int, metavar="N",
                   help="seed of the humanization: the same seed renders the same performance "
                        "(default: a fixed one)")


def _max_duration(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-duration", type=_positive, default=MAX_DURATION_S, metavar="SECONDS",
                   help=f"refuse a performance longer than this (default: {MAX_DURATION_S:g}, "
                        f"{MAX_DURATION_S / 3600:g} hours)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only errors")
    p.add_argument("-v", "--verbose", action="store_true", help="show what each stage does")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")


class _Progress:
    """A tqdm bar for the whole render, labelled with the current stage; silent off a terminal."""

    def __init__(self, enabled: bool, label: str):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=1000, desc=label, unit="‰", leave=False, file=sys.stderr,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
        self.label = label

    def __call__(self, stage: str, fraction: float, piece: str | None = None) -> None:
        if self.bar is None:
            return
        self.bar.set_description_str(f"{piece or self.label} · {stage}", refresh=False)
        self.bar.n = int(1000 * overall_fraction(stage, fraction))
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _render(args) -> int:
    from pipeline.speed.accelerator import Accelerator

    # the helper process starts parsing the scores first: importing the render (below) is the
    # second of work it runs beside
    with Accelerator.with_head_start(args.scores, ensemble=args.ensemble,
                                     swing=args.swing) as accelerator:
        from pipeline.run import render_album, render_score

        from pipeline.mix.rehearsal import Rehearsal

        presets = tuple(p.strip() for p in args.preset.split(",") if p.strip()) \
            if args.preset else None
        from pipeline.score.excerpt import parse_bars

        rehearsal = Rehearsal(args.rehearsal_part_db, args.rehearsal_others_db, args.count_in) \
            if args.rehearsal else None
        if (args.loop or args.pass_number != 1) and not args.bars:
            raise PipelineError("--loop and --pass go with --bars (which bars to play)")
        bars = parse_bars(args.bars, pass_number=args.pass_number, loop=args.loop) \
            if args.bars else None
        if bars is not None and args.album:
            raise PipelineError("--bars renders an excerpt of one score, not an album")
        common = dict(out_root=args.out, ensemble=args.ensemble, presets=presets,
                      soundfont=args.soundfont, sample_rate=args.sample_rate,
                      reference=args.reference, swing=args.swing, layout=args.layout,
                      humanize=args.humanize, seed=args.seed, max_duration_s=args.max_duration,
                      mix_stems=args.mix_stems, attack_compensation=args.attack_compensation,
                      vibrato=args.vibrato, phrasing=args.phrasing, rehearsal=rehearsal,
                      accelerator=accelerator)
        interactive = not args.quiet and sys.stderr.isatty()
        if args.album:
            bar = _Progress(interactive, f"album ({len(args.scores)} pieces)")
            try:
                results = render_album(args.scores, name=args.album,
                                       progress=lambda piece, stage, f: bar(stage, f, piece),
                                       **common)
            finally:
                bar.close()
            for result in results:
                _summary(result, args.quiet)
            return 0
        failed = 0
        for score in args.scores:
            bar = _Progress(interactive, Path(score).name)
            try:
                result = render_score(score, progress=bar, bars=bars, **common)
            except PipelineError as exc:
                if len(args.scores) == 1 or args.debug:
                    raise
                print(f"score2audio: error: {exc}", file=sys.stderr)
                failed += 1
                continue
            finally:
                bar.close()
            _summary(result, args.quiet)
        return EXIT_ERROR if failed else 0


def _summary(result, quiet: bool) -> None:
    if quiet:
        return
    from pipeline.output.piece_report import range_notes

    rep = result.report
    print(f"{rep.title} — {rep.instrumentation} ({rep.ensemble}, {rep.duration_s:.1f} s)")
    print(f"  files: {result.folder}/")
    print(f"  settings: {_settings_line(rep.settings)}")
    if rep.sidecar:
        changed = [f"{p.part} ({', '.join(p.set_by_sidecar)})" for p in rep.parts
                   if p.set_by_sidecar]
        print(f"  sidecar: {rep.sidecar}" + (f"; parts: {'; '.join(changed)}" if changed else ""))
    if rep.excerpt:
        x = rep.excerpt
        print(f"  excerpt: bars {x.first_bar}-{x.last_bar}"
              + (f" (pass {x.pass_number})" if x.pass_number > 1 else "")
              + f", from {x.start_s:.1f} s in the piece, {x.played_s:.1f} s"
              + (", looped" if x.loop else ""))
    for p in rep.parts:  # notes beyond the instrument's range or the soundfont's samples
        if notes := range_notes(p):
            print(f"  {p.part}: {'; '.join(notes)}")
    _master_lines(rep.masters)
    if rep.rehearsal:
        t = rep.rehearsal[0]
        count = f", a {t.count_in_beats}-beat count-in" if t.count_in_beats else ""
        print(f"  rehearsal/: {len(rep.rehearsal)} tracks (own part {t.part_gain_db:+g} dB, "
              f"the others {t.others_gain_db:+g} dB{count})")


def _master_lines(masters) -> None:
    """A line per master (its files, loudness against the target, true peak against the
    ceiling), and the guard's reason when it stopped short."""
    for m in masters:
        names = ", ".join(f.file for f in m.files)
        target = "" if m.target_lufs is None else f" (target {m.target_lufs:g} LUFS)"
        print(f"  {names}: {m.integrated_lufs} LUFS{target}, {m.true_peak_dbtp} dBTP "
              f"(ceiling {m.ceiling_dbtp:g})")
        if m.guard.engaged:
            print(f"    guard: {m.guard.why}")


def _settings_line(settings) -> str:
    """'ensemble orchestra (sidecar), layout standard (default), …': each value and its origin."""
    shown = []
    for key, entry in settings:
        value = entry.value
        if value in (None, ""):
            continue
        if key == "soundfont":
            value = Path(value).name
        shown.append(f"{key} {value} ({entry.source})")
    return ", ".join(shown)


class _PortfolioProgress:
    """One tqdm bar per phase (render, master): pieces done, the pieces in work, and an ETA."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.phase = enabled, None, None

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        if event.phase != self.phase:
            self.close()
            from tqdm import tqdm
            self.phase = event.phase
            self.bar = tqdm(total=event.total, desc=event.phase, unit="piece", file=sys.stderr,
                            leave=False, dynamic_ncols=True,
                            bar_format="{desc}: {n_fmt}/{total_fmt}|{bar}| {elapsed}<{remaining}"
                                       "{postfix}")
        self.bar.n = event.done
        self.bar.set_postfix_str(", ".join(event.running), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _log_above(bar: bool):
    """Log lines (the workers' too) printed above a progress bar instead of through it."""
    if not bar:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def _portfolio(args) -> int:
    import time

    from pipeline.portfolio.build import build_portfolio

    bar = _PortfolioProgress(not args.quiet and sys.stderr.isatty())
    t0 = time.perf_counter()
    try:
        with _log_above(bar.enabled):
            result = build_portfolio(args.scores_dir, args.out, soundfont=args.soundfont,
                                     sample_rate=args.sample_rate, workers=args.jobs,
                                     dask=args.dask, title=args.title, progress=bar)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    if not args.quiet:
        width = max(len(o.source) for o in result.outcomes)
        for o in result.outcomes:
            if o.status == "failed":
                detail = o.reason
            else:
                lufs = "" if o.lufs is None else f", {o.lufs:g} LUFS"
                detail = f"{o.category}, {o.duration_s:.1f} s{lufs}"
            print(f"{o.source:<{width}}  {o.status:<10}  {detail}")
        counts = [f"{result.count(s)} {s}" for s in ("rendered", "resumed", "remastered",
                                                      "unchanged", "failed") if result.count(s)]
        print(f"{' · '.join(counts)} in {elapsed:.1f} s — site: {result.index}")
    for o in result.failed if args.quiet else ():
        print(f"score2audio: error: {o.reason}", file=sys.stderr)
    return EXIT_ERROR if result.failed else 0


def _master(args) -> int:
    from pipeline.run import master_file

    presets = tuple(p.strip() for p in args.preset.split(",") if p.strip())
    bar = _Progress(not args.quiet and sys.stderr.isatty(), Path(args.mix).name)
    try:
        result = master_file(args.mix, presets, out_root=args.out, ensemble=args.ensemble,
                             reference=args.reference, progress=bar)
    finally:
        bar.close()
    if not args.quiet:
        src = result.report.source
        print(f"{src.file} ({src.format}, {src.sample_rate} Hz, "
              f"{'mono' if src.channels == 1 else 'stereo'}, {src.duration_s:.1f} s): "
              f"{src.integrated_lufs} LUFS, {src.true_peak_dbtp} dBTP")
        print(f"  files: {result.folder}/")
        _master_lines(result.report.masters)
    return 0


def _meter(args) -> int:
    import json
    import math

    from pipeline.run import meter_file

    rows, failed = [], 0
    for name in args.files:
        try:
            r = meter_file(name)
        except PipelineError as exc:
            if args.debug:
                raise
            print(f"score2audio: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        finite = math.isfinite(r.integrated_lufs)
        rows.append({"file": name,
                     "integrated_lufs": round(r.integrated_lufs, 2) if finite else None,
                     "loudness_range_lu": round(r.loudness_range_lu, 2),
                     "true_peak_dbtp": round(r.true_peak_dbtp, 2) if finite else None,
                     "plr_db": round(r.plr_db, 2) if finite else None})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        width = max((len(row["file"]) for row in rows), default=0)
        for row in rows:
            lufs = "silent" if row["integrated_lufs"] is None else f"{row['integrated_lufs']:6.1f} LUFS"
            plr = "" if row["plr_db"] is None else f"  PLR {row['plr_db']:5.1f} dB"
            peak = "" if row["true_peak_dbtp"] is None else f"  TP {row['true_peak_dbtp']:6.1f} dBTP"
            print(f"{row['file']:<{width}}  {lufs}  LRA {row['loudness_range_lu']:5.1f} LU{peak}{plr}")
    return EXIT_ERROR if failed else 0


def _perform(args) -> int:
    from pipeline.run import perform_to_midi

    performance = perform_to_midi(args.score, args.output, soundfont=args.soundfont,
                                  swing=args.swing, fermata_hold=args.fermata_hold,
                                  humanize=args.humanize, seed=args.seed,
                                  max_duration_s=args.max_duration, phrasing=args.phrasing)
    if not args.quiet:
        print(f"{args.output}: {len(performance.tracks)} tracks, {performance.note_count} notes, "
              f"{performance.duration_s:.1f} s")
    return 0


def _list(args) -> int:
    from pipeline.settings.config import load_preset, load_template, preset_names, template_names

    if args.command == "templates":
        for name in template_names():
            t = load_template(name)
            print(f"{name:14s} {t.room.name} (RT60 {t.room.rt60_s:.1f} s) — {t.description} "
                  f"Layouts: {', '.join(t.layout_names)}.")
    else:
        for name in preset_names():
            p = load_preset(name)
            level = "no loudness target" if p.target_lufs is None else f"{p.target_lufs:g} LUFS"
            rate = "mix rate" if p.sample_rate is None else f"{p.sample_rate / 1000:g} kHz"
            print(f"{name:12s} {level}, {p.ceiling_dbtp:g} dBTP, {'+'.join(p.formats).upper()} "
                  f"{p.bit_depth}-bit {rate} — {p.description}")
    return 0


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so every half-written file is removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, _frame) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_ERROR
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else \
        logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="score2audio: %(levelname)s: %(message)s")
    logging.getLogger("music21").setLevel(logging.ERROR)
    handler = {"render": _render, "perform": _perform, "portfolio": _portfolio, "master": _master,
               "meter": _meter, "templates": _list, "presets": _list}
    previous = _catch_termination()
    try:
        return handler[args.command](args)
    except PipelineError as exc:
        if args.debug:
            raise
        print(f"score2audio: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # the reader stopped reading (`score2audio templates | head`)
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("score2audio: interrupted; no files were left half-written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as exc:
        print(f"score2audio: stopped by {signal.Signals(exc.signum).name}; no files were left "
              f"half-written", file=sys.stderr)
        return 128 + exc.signum
    except Exception as exc:  # a bug, not bad input: still one line, the details on request
        if args.debug:
            raise
        print(f"score2audio: internal error: {type(exc).__name__}: {exc} "
              f"(run again with --debug for the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _catch_termination() -> dict:
    """Make SIGTERM and SIGHUP unwind like Ctrl-C; returns the handlers they had. A signal
    the caller ignores (``nohup`` ignores SIGHUP) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, _terminate) for signum in (signal.SIGTERM, signal.SIGHUP)
            if signal.getsignal(signum) is not signal.SIG_IGN}


def run() -> None:
    """The console command: :func:`main`, then a quick exit."""
    _exit_quickly(main())


def _exit_quickly(code: int) -> None:
    """Leave without tearing the interpreter down: freeing a long score's objects one by one
    (music21's, numba's) took 0.5 s after the Große Fuge. The exit handlers still run, and the
    files are all closed by now (the render's accelerator has finished its background work);
    with any thread still at work, the usual exit waits for it."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
