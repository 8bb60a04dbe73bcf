"""Bad input gets one clear line naming the file, exit code 2, no traceback, nothing written."""
from __future__ import annotations

import pytest

from conftest import DATA, run_cli


def _one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("score2audio: error: ")
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0]


def test_missing_file(tmp_path):
    proc = run_cli("render", str(tmp_path / "nowhere.musicxml"), "--out", str(tmp_path / "out"))
    _one_line_error(proc, "nowhere.musicxml", "no such file")
    assert not (tmp_path / "out").exists()


def test_unsupported_extension(tmp_path):
    score = tmp_path / "piece.docx"
    score.write_bytes(b"not a score")
    proc = run_cli("render", str(score), "--out", str(tmp_path / "out"))
    _one_line_error(proc, "piece.docx", "unsupported file type", ".musicxml")
    assert not (tmp_path / "out").exists()


def test_missing_soundfont(tmp_path):
    proc = run_cli("render", str(DATA / "single-a4.musicxml"), "--out", str(tmp_path / "out"),
                   "--soundfont", str(tmp_path / "missing.sf2"))
    _one_line_error(proc, "missing.sf2", "soundfont not found")
    assert not (tmp_path / "out").exists()


def test_file_that_is_not_a_soundfont(tmp_path):
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    proc = run_cli("render", str(DATA / "single-a4.musicxml"), "--out", str(tmp_path / "out"),
                   "--soundfont", str(fake))
    _one_line_error(proc, "fake.sf2", "not a valid SoundFont")


def test_unknown_ensemble_lists_the_choices(tmp_path):
    proc = run_cli("render", str(DATA / "single-a4.musicxml"), "--out", str(tmp_path / "out"),
                   "--ensemble", "marching-band")
    _one_line_error(proc, "marching-band", "orchestra", "quartet")


def test_broken_musicxml(tmp_path):
    score = tmp_path / "broken.musicxml"
    score.write_bytes(b"\x89PNG\r\n\x1a\n this is no xml")
    proc = run_cli("render", str(score), "--out", str(tmp_path / "out"))
    _one_line_error(proc, "broken.musicxml")
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli("render", str(tmp_path / "nowhere.musicxml"), "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


@pytest.mark.parametrize("command", ["templates", "presets"])
def test_listing_commands(command):
    proc = run_cli(command)
    assert proc.returncode == 0
    assert ("orchestra" if command == "templates" else "streaming") in proc.stdout


def test_unknown_layout_lists_the_templates_layouts(tmp_path):
    proc = run_cli("render", str(DATA / "single-a4.musicxml"), "--out", str(tmp_path / "out"),
                   "--ensemble", "orchestra", "--layout", "backwards")
    _one_line_error(proc, "--layout backwards", "orchestra", "standard, antiphonal")
    assert not (tmp_path / "out").exists()


def test_templates_lists_each_templates_layouts():
    proc = run_cli("templates")
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert "Layouts: standard, antiphonal." in lines["orchestra"]
    assert "Layouts: standard, blocks." in lines["choir"]


def test_a_reader_that_stops_reading_is_no_internal_error():
    """``score2audio templates | head -1``: the list's reader goes away; the command stops
    quietly instead of reporting a broken pipe as a bug."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "templates"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before the first line
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr


def test_finding_fluidsynth_says_nothing_on_the_console():
    """pyfluidsynth prints where it found the library when CI is set in the environment (as on
    build machines and some composers' shells); that line must not reach the console."""
    import os
    import subprocess
    import sys

    probe = "from pipeline.dsp.fluidsynth import library; library()"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**os.environ, "CI": "true"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == "", (proc.stdout, proc.stderr)
