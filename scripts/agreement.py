"""How closely our performances agree with MuseScore 3's playback on real scores (``make agreement``).

For each score of :data:`SCORES` (music21's corpus), MuseScore 3 plays the file
(``mscore3 -o ref.mid``, cached) and we perform the same file with fermatas unheld
(``fermata_hold=1.0``: MuseScore 3 does not hold an imported MusicXML fermata); the shared
``midi-agreement`` tool then matches notes on pitch and onset (±60 ms). The table gives each
score's F1, its **content agreement** (tempo-free: the notes of each file in the order they
sound, chord by chord, matched as sequences, so a held fermata or another reading of a tempo
word changes nothing, while a wrong, missing or extra note, or a passage played in another
order, does) and, where MuseScore reads the score's form wrongly (or plays tempo words at the
tempo before them), the F1 of our performance played in MuseScore's bar order (and tempo): what
remains are the differences in everything else. ``--show N`` lists the first N notes only one
side plays, with the bar and beat where we play them.
The last line is the F1 over all notes of all scores.

Needs ``mscore3`` and the agreement tool (``$MIDI_AGREEMENT``, default
/work/shared/tools/midi-agreement); without them it says so in one line and stops. MuseScore's
MIDI files are cached in ``$SCORE2AUDIO_CACHE/musescore`` (else /tmp/score2audio-musescore).

usage: python scripts/agreement.py [--show N] [NAME ...]   (NAME: part of a score's label)
"""
from __future__ import annotations

import argparse
import bisect
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np

TOLERANCE_S = 0.06
CHORD_S = 0.03  # notes of one file starting this close together are one chord
MSCORE_TIMEOUT_S = 300


@dataclass(frozen=True)
class Case:
    label: str
    corpus_path: str  # relative to music21's corpus folder
    #: MuseScore's (wrong) bar order as printed measure numbers, "1-14,1-14,15-60,…", with the
    #: reason; None when MuseScore reads the form as the score says
    musescore_form: str | None = None
    musescore_error: str = ""
    #: MuseScore plays tempo words without a <sound tempo> (Andante, Allegro…) at the tempo
    #: before them; so do we in the second column when this is set
    tempo_words_unread: bool = False


SCORES = [
    Case("Bach BWV 1.6", "bach/bwv1.6.mxl"),
    Case("Bach BWV 10.7", "bach/bwv10.7.mxl"),
    Case("Bach BWV 101.7", "bach/bwv101.7.mxl"),
    Case("Bach BWV 102.7", "bach/bwv102.7.mxl"),
    Case("Bach BWV 103.6", "bach/bwv103.6.mxl"),
    Case("Bach BWV 104.6", "bach/bwv104.6.mxl"),
    Case("Haydn op1/1 i", "haydn/opus1no1/movement1.mxl"),
    Case("Haydn op74/1 iii", "haydn/opus74no1/movement3.mxl",
         "1-14,1-14,15-60,15-60,61-74,15-74,76-97,76-113",
         "the trio's :| at bar 74 goes back to the minuet's |: at bar 15, not to the trio's "
         "first bar 61 (after the :| of bar 60, in a new key); on the way back it plays the "
         "first ending (bar 74) again and never the second (bar 75)"),
    Case("Mozart K80 i", "mozart/k80/movement1.mxl", "1-28,1-28,29-67,1-67",
         "the :| at bar 67 goes back to the first bar, not to bar 29 after the :| of bar 28 "
         "(no |: anywhere): the first half is played a third time"),
    Case("Mozart K155 i", "mozart/k155/movement1.mxl"),
    Case("Mozart K458 i", "mozart/k458/movement1.mxl", "0-90,0-90,91-232,91-282",
         "bar 232 (<ending type=\"stop\" number=\"\"> and :|, its start not encoded) is not "
         "taken as a first ending: on the second pass it plays bar 232 and the second ending 233"),
    Case("Mozart K458 ii", "mozart/k458/movement2.mxl", "1-8,1-8,9-28,1-38,1-38,40-62,40-63",
         "the :| at bars 28 and 38 go back to the first bar (no |:), not to bars 9 and 29 after "
         "the previous :|; the first endings 38 and 62 (<ending type=\"stop\"> without a "
         "start) are played on both passes and the second ending 39 never"),
    Case("Beethoven op18/1 iii", "beethoven/opus18no1/movement3.mxl", "1-10,1-85,1-101,1-145",
         "the :| at bars 85 and 101 go back to the first bar (no |:), not to bars 11 and 86 "
         "after the previous :|"),
    Case("Beethoven op59/2 iii", "beethoven/opus59no2/movement3.mxl",
         "1-9,2-7,10-55,12-51,56-142,1-7,10-51,56-142",
         "it stops after the second trio: bar 142 says \"Da Capo il minore ma senza replica ed "
         "allora ancora una volta il trio, e dopo di nuovo da capo il minore senza replica\""),
    Case("Joplin Maple Leaf Rag", "joplin/maple_leaf_rag.mxl"),
    Case("Berlin Alexander's Ragtime Band", "leadSheet/berlinAlexandersRagtime.mxl"),
    Case("Foster Jeanie (lead sheet)", "leadSheet/fosterBrownHair.mxl"),
    Case("Schubert Der Lindenbaum", "schubert/Lindenbaum.xml"),
    Case("Schumann Dichterliebe 2", "schumann_robert/dichterliebe_no2.xml"),
    Case("Weber clarinet concertino", "weber/concertino_clarinet.mxl"),
    Case("Corelli op3/1 i", "corelli/opus3no1/1grave.xml"),
    Case("Handel Lascia ch'io pianga", "handel/rinaldo/Lascia_chio_pianga.mxl", "1-54,13-54",
         "after the D.S. at bar 54 it plays on past the Fine of bar 42 (<words>Fine</words> "
         "with <sound fine=\"yes\"/>) to the end again; it reads no tempo in the word "
         "\"Andante\" (bar 11, no <sound tempo>)", tempo_words_unread=True),
    Case("Monteverdi madrigal 3.1", "monteverdi/madrigal.3.1.mxl"),
    Case("Monteverdi madrigal 4.1", "monteverdi/madrigal.4.1.mxl"),
    Case("Verdi La donna è mobile", "verdi/laDonnaEMobile.mxl"),
]


def _tool(path: Path):
    loader = importlib.machinery.SourceFileLoader("midi_agreement", str(path))
    spec = importlib.util.spec_from_loader("midi_agreement", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _cache_dir() -> Path:
    root = os.environ.get("SCORE2AUDIO_CACHE")
    folder = Path(root) / "musescore" if root else Path(tempfile.gettempdir()) / "score2audio-musescore"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def musescore_midi(score: Path, mscore: str) -> Path:
    """MuseScore 3's playback of ``score`` as MIDI, made once per file content."""
    digest = hashlib.sha1(score.read_bytes()).hexdigest()[:16]
    out = _cache_dir() / f"{score.parent.name}-{score.stem}-{digest}.mid"
    if not out.exists():
        partial = out.with_suffix(".partial.mid")
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        done = subprocess.run([mscore, "-o", str(partial), str(score)], env=env,
                              capture_output=True, timeout=MSCORE_TIMEOUT_S)
        if done.returncode or not partial.exists():
            raise RuntimeError(f"{score}: mscore3 failed ({done.stderr.decode(errors='replace')[-200:]})")
        partial.replace(out)
    return out


def _bar_order(score, spec: str) -> list[int]:
    """Bar indexes (of the first part) for a "1-14,15-60,…" list of printed measure numbers."""
    numbers = _measure_numbers(score)
    order = []
    for run in spec.split(","):
        first, _, last = run.strip().partition("-")
        lo = numbers.index(first)
        hi = numbers.index(last or first, lo)
        order.extend(range(lo, hi + 1))
    return order


def our_midi(score: Path, out: Path, form_spec: str | None = None, tempo_words: bool = True):
    """Our performance of ``score`` (fermatas unheld), optionally in the bar order ``form_spec``
    and without reading tempo words; returns a function that names the bar and beat we play at
    a time in seconds."""
    from pipeline.score import form
    from pipeline.score import timing
    from pipeline.score import perform as perform_module
    from pipeline.run.recipe import perform_to_midi

    real_timeline = form.timeline
    timelines = []

    def timeline(parsed, *, source=None):
        if form_spec is None:
            tl = real_timeline(parsed, source=source)
        else:
            order = _bar_order(parsed, form_spec)
            with mock.patch.object(form, "play_order", lambda bars: order):
                tl = real_timeline(parsed, source=source)
        timelines.append((tl, _measure_numbers(parsed)))
        return tl

    never = re.compile(r"(?!)")
    # MuseScore 3 plays no chord symbols: a lead sheet's comping track is left out (it is
    # tested on its own in tests/test_comping.py)
    with mock.patch.object(form, "timeline", timeline), \
            mock.patch.object(timing, "_WORDS", timing._WORDS if tempo_words else never), \
            mock.patch.object(perform_module, "_lead_sheet_comping", lambda *a, **k: []):
        performance = perform_to_midi(score, out, fermata_hold=1.0)
    tl, numbers = timelines[0]
    tempo = performance.tempo_map
    tpq = tempo.ticks_per_quarter
    grid = np.arange(0, int(tl.total * tpq) + tpq, tpq // 16)
    grid_s = tempo.seconds(grid)

    def where(seconds: float) -> str:
        quarters = grid[min(len(grid) - 1, int(np.searchsorted(grid_s, seconds - 1e-6)))] / tpq
        for written, played, length in tl.segments:
            if played <= quarters + 1e-6 < played + length:
                bar = bisect.bisect_right(tl.starts, written + 1e-9) - 1
                return f"bar {numbers[bar]} beat {1 + quarters - played:g}"
        return "after the end"
    return where


def _measure_numbers(score) -> list[str]:
    from music21 import stream

    return [str(m.number) for m in score.parts[0].getElementsByClass(stream.Measure)]


def compare(tool, ref: Path, hyp: Path) -> tuple[int, int, int, list, list]:
    """(matched, notes in ref, notes in hyp, only in ref, only in hyp)."""
    ref_notes, hyp_notes = tool.notes(str(ref)), tool.notes(str(hyp))
    matched, only_ref, only_hyp = tool.match(ref_notes, hyp_notes, TOLERANCE_S)
    return matched, len(ref_notes), len(hyp_notes), only_ref, only_hyp


def sounding_order(notes) -> list[int]:
    """The pitches of ``notes`` ((onset s, …, pitch, …) rows) in the order they sound: chord by
    chord (onsets within :data:`CHORD_S`), low to high within a chord. No times are kept."""
    out: list[int] = []
    chord: list[int] = []
    start = None
    for onset, pitch in sorted((float(n[0]), int(n[2])) for n in notes):
        if start is None or onset - start > CHORD_S:
            out.extend(sorted(chord))
            chord, start = [], onset
        chord.append(pitch)
    return out + sorted(chord)


def content_f1(tool, ref: Path, hyp: Path) -> float:
    """Tempo-free agreement: the two files' notes in sounding order matched as sequences."""
    import difflib

    a, b = sounding_order(tool.notes(str(ref))), sounding_order(tool.notes(str(hyp)))
    matched = sum(block.size for block in
                  difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    return f1(matched, len(a), len(b))


def f1(matched: int, n_ref: int, n_hyp: int) -> float:
    return 2 * matched / (n_ref + n_hyp) if n_ref + n_hyp else 1.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="NAME", help="only scores whose label contains NAME")
    ap.add_argument("--show", type=int, default=0, metavar="N",
                    help="print the first N notes only one side plays, per score")
    args = ap.parse_args(argv)

    mscore = shutil.which("mscore3") or shutil.which("mscore")
    tool_path = Path(os.environ.get("MIDI_AGREEMENT", "/work/shared/tools/midi-agreement"))
    if mscore is None:
        print("agreement: skipped, mscore3 (MuseScore 3) is not installed")
        return 0
    if not tool_path.exists():
        print(f"agreement: skipped, no agreement tool at {tool_path} (set MIDI_AGREEMENT)")
        return 0
    warnings.filterwarnings("ignore", module="music21")  # overfull bars etc.: not ours to report
    logging.basicConfig(level=logging.ERROR, format="agreement: %(message)s")
    logging.getLogger("music21").setLevel(logging.ERROR)
    tool = _tool(tool_path)
    from music21 import common

    corpus = Path(common.getCorpusFilePath())
    cases = [c for c in SCORES if not args.names or any(n.lower() in c.label.lower() for n in args.names)]
    totals = [0, 0, 0]
    totals_as_musescore_reads = [0, 0, 0]  # the second column where there is one, else the first
    print(f"{'score':34s} {'notes':>6s} {'F1':>7s} {'content':>8s} {'F1 on MuseScore’s reading':>26s}")
    with tempfile.TemporaryDirectory(prefix="agree-") as work:
        for case in cases:
            score = corpus / case.corpus_path
            if not score.exists():
                print(f"{case.label:34s} (not in this music21 corpus: {case.corpus_path})")
                continue
            ref = musescore_midi(score, mscore)
            hyp = Path(work) / "ours.mid"
            where = our_midi(score, hyp)
            matched, n_ref, n_hyp, only_ref, only_hyp = compare(tool, ref, hyp)
            content = content_f1(tool, ref, hyp)
            for k, v in enumerate((matched, n_ref, n_hyp)):
                totals[k] += v
            as_read = (matched, n_ref, n_hyp)
            in_form = ""
            if case.musescore_form or case.tempo_words_unread:
                # the differences left when we, too, play MuseScore's bar order
                where = our_midi(score, hyp, case.musescore_form,
                                 tempo_words=not case.tempo_words_unread)
                left = compare(tool, ref, hyp)
                as_read = left[:3]
                in_form = f"{f1(*left[:3]):.4f}"
                only_ref, only_hyp = left[3], left[4]
            for k, v in enumerate(as_read):
                totals_as_musescore_reads[k] += v
            print(f"{case.label:34s} {n_ref:6d} {f1(matched, n_ref, n_hyp):7.4f} {content:8.4f} "
                  f"{in_form:>26s}")
            if case.musescore_error and args.show:
                print(f"{'':4s}MuseScore: {case.musescore_error}")
            for title, rows in (("only MuseScore", only_ref), ("only ours", only_hyp)):
                for n in rows[:args.show]:
                    print(f"{'':4s}{title:15s} {n[0]:9.3f} s pitch {n[2]:3d}  ({where(n[0])})")
    print(f"{'all notes':34s} {totals[1]:6d} {f1(*totals):7.4f} {'':8s} "
          f"{f1(*totals_as_musescore_reads):26.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
