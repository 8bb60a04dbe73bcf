"""Issue 8, faults: a render killed at any moment or stopped by a full disk never leaves a file
that looks finished, and the same input always gives bit-identical files."""
from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from conftest import DATA, run_cli
from pipeline.output.export import PieceFolder

SCORE = DATA / "single-a4.musicxml"
AUDIO = {".wav", ".flac", ".mp3", ".ogg"}


def render_process(out: Path, *options: str, limit_bytes: int | None = None,
                   score: Path = SCORE) -> subprocess.Popen:
    """``score2audio render`` in a child process, with Ctrl-C working even when the test runner
    ignores SIGINT (a background job), and optionally a file-size limit (``ulimit -f``)."""
    def child() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "render", str(score),
                             "--out", str(out), "-q", *options], preexec_fn=child,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_complete(path: Path) -> None:
    """A file under its final name must be whole: its own header agrees with its size."""
    data = path.read_bytes()
    if path.suffix == ".wav":
        assert data[:4] == b"RIFF" and int.from_bytes(data[4:8], "little") + 8 == len(data), path
        audio, _ = sf.read(str(path), dtype="float32")
        assert len(audio) == sf.info(str(path)).frames > 0, path
    elif path.suffix in AUDIO:
        audio, _ = sf.read(str(path), dtype="float32")
        assert len(audio) > 0, path
    elif path.suffix == ".mid":
        for track in mido.MidiFile(str(path)).tracks:
            assert track and track[-1].type == "end_of_track", path
    elif path.suffix == ".json":
        json.loads(data)
    elif path.suffix == ".html":
        assert data.rstrip().endswith(b"</html>"), path
    else:
        raise AssertionError(f"unexpected output file {path}")


def final_files(out: Path) -> list[Path]:
    """Every file whose name is a finished file's, wherever it is (even in a hidden working
    folder: files there are written atomically too)."""
    return [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]


def hidden(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------
# killed at random moments

def test_a_render_killed_at_random_moments_leaves_no_finished_looking_partial_file(tmp_path):
    t0 = time.monotonic()
    whole = render_process(tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    full_s = time.monotonic() - t0
    complete = final_files(tmp_path / "whole")
    assert {p.name for p in complete} >= {"master.wav", "mix.wav", "performance.mid",
                                          "report.json", "report.html", "01-flute.wav"}
    for path in complete:
        assert_complete(path)

    rng = np.random.default_rng(8)
    kills = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL] * 2
    for n, signum in enumerate(kills):
        out = tmp_path / f"killed-{n}"
        delay = float(rng.uniform(0.2, 1.0)) * full_s  # from start-up to the report
        proc = render_process(out)
        time.sleep(delay)
        started = out.exists()  # the output folder appears once the render is under way
        proc.send_signal(signum)
        code = proc.wait(timeout=300)
        err = proc.stderr.read()
        for path in final_files(out):
            assert_complete(path)
        if code == 0:  # finished before the signal came: a whole render
            assert not hidden(out)
            continue
        if not started:  # still starting Python (its own SIGINT handling): nothing written
            assert not final_files(out), (signum, code, err)
            continue
        assert code in (-signum, 128 + signum), (signum, code, err)
        if signum != signal.SIGKILL:  # it could clean up: nothing temporary is left
            assert not hidden(out), (signum, delay, hidden(out))
            assert "Traceback" not in err, err


def test_an_interrupt_before_the_mixer_takes_the_synths_blocks_stops_them(tmp_path):
    # Ctrl-C while the synths are started but the mixer has not yet asked for their blocks
    # (they wait for it): the render stops at once, leaving nothing behind, rather than
    # waiting for a mixer that will never come
    probe = (
        "import sys\n"
        "from pipeline.speed.accelerator import Accelerator\n"
        "from pipeline.run.recipe import render_score\n"
        "def interrupted():\n"
        "    raise KeyboardInterrupt\n"
        "Accelerator.collect_parsed_score = staticmethod(interrupted)\n"
        "try:\n"
        "    render_score(sys.argv[1], out_root=sys.argv[2])\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", probe, str(SCORE), str(out)],
                          cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "interrupted", done.stderr
    assert not final_files(out) and not hidden(out)


def test_a_killed_renders_working_folder_is_removed_by_the_next_render(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / f".piece.partial-{dead.pid}-x1y2"
    (abandoned / "stems").mkdir(parents=True)
    (abandoned / "stems" / "01-flute.wav").write_bytes(b"RIFF")
    running = tmp_path / f".piece.partial-{os.getpid()}-a1b2"  # a render still under way
    running.mkdir()
    other = tmp_path / f".other.partial-{dead.pid}-z9"         # another piece's
    other.mkdir()
    folder = PieceFolder(tmp_path, "piece")
    assert not abandoned.exists()
    assert running.exists() and other.exists() and folder.work.exists()
    folder.discard()


# ---------------------------------------------------------------------------------------------
# a full disk

def _one_line_refusal(proc: subprocess.Popen, out: Path, *words: str) -> str:
    code = proc.wait(timeout=300)
    err = proc.stderr.read()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("score2audio: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    assert not [p for p in out.rglob("*") if p.is_file()], list(out.rglob("*"))
    return lines[0]


def test_a_file_size_limit_is_a_clear_error_with_no_partial_outputs(tmp_path):
    out = tmp_path / "out"
    proc = render_process(out, limit_bytes=300 << 10)  # a stem alone is over 1 MB
    _one_line_refusal(proc, out, str(out), "size limit of 0.3 MB", "ulimit -f")


@contextmanager
def small_disk(folder: Path, size: str, *, read_only: bool = False):
    """A tmpfs of ``size`` at ``folder``; the test is skipped where mounting is not allowed."""
    folder.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                                            str(folder)], capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (the ulimit test covers the same path)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("size, words", [
    ("1m", ("not enough free space", "the stems and the mix need about 3 MB")),  # refused up front
    ("4m", ("the disk is full",)),                                         # runs out part-way
])
def test_a_full_disk_is_a_clear_error_with_no_partial_outputs(tmp_path, size, words):
    with small_disk(tmp_path / "disk", size) as disk:
        out = disk / "out"
        _one_line_refusal(render_process(out), out, str(out), *words)


def test_a_read_only_output_folder(tmp_path):
    with small_disk(tmp_path / "disk", "1m", read_only=True) as disk:
        out = disk / "out"
        _one_line_refusal(render_process(out), out, str(out), "Read-only file system")


# ---------------------------------------------------------------------------------------------
# hostile names, and the same input rendered twice

HOSTILE = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <work><work-title>../../etc/passwd</work-title></work>
  <part-list>
    <score-part id="P1"><part-name>../../../tmp/evil</part-name>
      <midi-instrument id="P1-I1"><midi-program>74</midi-program></midi-instrument></score-part>
    <score-part id="P2"><part-name>..\\..\\c:\\windows/.</part-name>
      <midi-instrument id="P2-I1"><midi-program>72</midi-program></midi-instrument></score-part>
  </part-list>
  <part id="P1"><measure number="1"><attributes><divisions>1</divisions></attributes>
    <note><pitch><step>A</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
  </measure></part>
  <part id="P2"><measure number="1"><attributes><divisions>1</divisions></attributes>
    <note><pitch><step>E</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
  </measure></part>
</score-partwise>
"""


@pytest.fixture(scope="module")
def rendered_twice(tmp_path_factory):
    """The hostile score (its file named ``...musicxml``) rendered twice, dithered 16-bit CD,
    MP3 and Ogg masters included, each time in a fresh process."""
    root = tmp_path_factory.mktemp("hostile")
    score = root / "...musicxml"
    score.write_text(HOSTILE, encoding="utf-8")
    outs = []
    for n in range(2):
        out = root / f"out-{n}"
        proc = run_cli("render", str(score), "--out", str(out), "-q", "--preset", "cd,web-demo",
                       "--mix-stems")
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    return root, outs


def test_names_from_the_score_stay_inside_the_output_folder(rendered_twice):
    root, (out, _) = rendered_twice
    assert sorted(p.name for p in root.iterdir()) == ["...musicxml", "out-0", "out-1"]
    assert [p.name for p in out.iterdir()] == ["untitled"]  # the file's name has no letters
    piece = out / "untitled"
    for path in piece.rglob("*"):
        assert path.resolve().is_relative_to(piece.resolve())
        assert not path.name.startswith("."), path
    stems = sorted(p.name for p in (piece / "stems").iterdir())
    assert stems == ["01-tmp-evil.wav", "02-c-windows.wav"]


def test_the_same_input_gives_bit_identical_files(rendered_twice):
    _, outs = rendered_twice

    def digests(out: Path) -> dict[str, str]:
        return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*")) if p.is_file() and p.suffix != ".json"
                and p.suffix != ".html"}  # the report holds wall-clock timings

    first, second = digests(outs[0]), digests(outs[1])
    assert {Path(k).suffix for k in first} == {".wav", ".mp3", ".ogg", ".mid"}
    assert len(first) == 9  # 2 stems, 2 mix stems, mix, CD master, MP3, Ogg, performance.mid
    assert first == second
