"""A piece's sidecar (<score-name>.toml or piece.toml): what it sets, what overrides it, and
one-line errors that name the file and the key."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import DATA, FLUIDR3, MUSESCORE, SCORES, run_cli
from pipeline.voices.assign import assign
from pipeline.run.recipe import render_score
from pipeline.errors import SidecarError
from pipeline.output.piece_report import Setting
from pipeline.settings.instruments import by_name
from pipeline.model import Note, Performance, Track
from pipeline.settings.sidecar import PartSettings, choose, find_sidecar, load_sidecar, read_sidecar

QUARTET = ["Violin I", "Violin II", "Viola", "Violoncello"]


def _write(folder: Path, text: str, name: str = "piece.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_score_named_sidecar_comes_before_piece_toml(tmp_path):
    score = tmp_path / "quartet.musicxml"
    score.write_text("")
    assert find_sidecar(score) is None
    _write(tmp_path, 'ensemble = "quintet"\n')
    assert read_sidecar(score).ensemble == "quintet"
    _write(tmp_path, 'ensemble = "orchestra"\n', "quartet.toml")
    assert read_sidecar(score).ensemble == "orchestra"


@pytest.mark.parametrize("text, words", [
    ('ensembel = "orchestra"\n', ["unknown key 'ensembel'", "ensemble, layout"]),
    ('ensemble = "marching-band"\n', ["'ensemble'", "orchestra"]),
    ("swing = true\n", ["'swing'", "number"]),
    ('preset = ["streaming", "radio"]\n', ["'preset'", "'radio'", "broadcast"]),
    ('soundfont = "missing.sf2"\n', ["'soundfont'", "missing.sf2", "not found"]),
    ('[parts."Violin I"]\nprogram = 200\n', ['parts."Violin I".program', "200", "0 to 127"]),
    ('[parts.2]\nprogram = 40.5\n', ["parts.2.program", "whole number"]),
    ('[parts.2]\npan = -1.5\n', ["parts.2.pan", "-1 to 1"]),
    ('[parts.2]\nlevel = "loud"\n', ["parts.2.level", "number"]),
    ('[parts.2]\nvolume = 3\n', ["unknown key 'parts.2.volume'", "level"]),
    ('[parts.2]\ninstrument = "theremin"\n', ["parts.2.instrument", "theremin",
                                              "instrument map"]),
    ('[parts.2]\nsoundfont = "nowhere.sf3"\n', ["parts.2.soundfont", "nowhere.sf3"]),
    ("ensemble = \n", ["not valid TOML"]),
], ids=["unknown key", "unknown ensemble", "wrong type", "unknown preset", "missing soundfont",
        "program out of range", "program not whole", "pan out of range", "level wrong type",
        "unknown part key", "unknown instrument", "part soundfont missing", "bad toml"])
def test_bad_sidecar_is_one_line_naming_file_and_key(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(SidecarError) as err:
        load_sidecar(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    for word in words:
        assert word in message


def test_parts_by_name_or_index_and_parts_not_in_the_score(tmp_path):
    side = load_sidecar(_write(tmp_path, '[parts."violin ii"]\npan = 0.5\n'
                                         '[parts.4]\nlevel = -2\n'))
    parts = side.for_tracks(QUARTET)
    assert parts[0] is None and parts[2] is None
    assert parts[1].pan == 0.5 and parts[1].keys == ("pan",)  # case-insensitive name
    assert parts[3].level_db == -2.0
    for text, words in (('[parts."Violin III"]\npan = 0\n', ['"Violin III"', "Violin I, Violin II"]),
                        ("[parts.5]\npan = 0\n", ["parts.5", "4 parts"]),
                        ('[parts.1]\npan = 0\n[parts."Violin I"]\npan = 1\n', ["second time"])):
        path = _write(tmp_path, text)
        with pytest.raises(SidecarError) as err:
            load_sidecar(path).for_tracks(QUARTET)
        assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
        assert all(w in str(err.value) for w in words), str(err.value)


def test_options_override_the_sidecar_which_overrides_the_defaults(tmp_path):
    side = load_sidecar(_write(tmp_path, 'ensemble = "orchestra"\nlayout = "antiphonal"\n'
                                         'preset = "cd"\nswing = 2\n'))
    s = choose(side, ensemble="quartet", swing=1.0)
    assert (s.ensemble, s.layout, s.presets, s.swing) == ("quartet", "antiphonal", ("cd",), 1.0)
    assert s.origin == {"ensemble": "option", "layout": "sidecar", "presets": "sidecar",
                        "soundfont": "default", "swing": "option"}
    bare = choose(None)
    assert (bare.ensemble, bare.presets, bare.origin["ensemble"]) == (None, ("streaming",),
                                                                      "default")


def _two_tracks() -> Performance:
    notes = (Note(0, 960, 60, 80),)
    return Performance("t", "", (Track("Flute", "Flute", notes, program=73),
                                 Track("Cello", "Cello", notes)))


def test_sidecar_sets_a_parts_instrument_program_and_soundfont():
    if not (FLUIDR3.exists() and MUSESCORE.exists()):
        pytest.skip("both GM soundfonts are needed")
    perf = _two_tracks()
    plain = assign(perf, soundfont=MUSESCORE)
    assert [(v.program, v.instrument, v.source) for v in plain] == \
        [(73, "Flute", "score"), (42, "Cello", "instrument map")]
    voices = assign(perf, soundfont=MUSESCORE, parts=(
        PartSettings(instrument=by_name("Oboe")),              # the score's program gives way
        PartSettings(program=43, soundfont=FLUIDR3)))
    assert (voices[0].program, voices[0].instrument, voices[0].family) == (68, "Oboe", "woodwinds")
    assert (voices[1].program, voices[1].soundfont, voices[1].source) == (43, FLUIDR3, "sidecar")
    assert voices[1].instrument == "Cello"  # the part is still a cello, on another sample


@pytest.fixture(scope="module")
def quartet_with_sidecar(tmp_path_factory):
    """The example string quartet with a sidecar: orchestra, antiphonal, two parts changed."""
    if not FLUIDR3.exists():
        pytest.skip(f"{FLUIDR3} is not installed")
    folder = tmp_path_factory.mktemp("piece")
    score = folder / "string-quartet.musicxml"
    shutil.copy(SCORES / "string-quartet.musicxml", score)
    _write(folder, f'ensemble = "orchestra"\nlayout = "antiphonal"\npreset = "handoff"\n'
                   f'[parts."violin i"]\nlevel = -3.0\n'
                   f'[parts.4]\nprogram = 42\nsoundfont = "{FLUIDR3}"\npan = -0.2\n')
    return score


def test_render_follows_the_sidecar(quartet_with_sidecar, tmp_path):
    report = render_score(quartet_with_sidecar, out_root=tmp_path).report
    assert report.sidecar == str(quartet_with_sidecar.parent / "piece.toml")
    assert report.setting("ensemble") == Setting("orchestra", "sidecar")
    assert report.setting("layout") == Setting("antiphonal", "sidecar")
    assert report.setting("preset") == Setting("handoff", "sidecar")
    assert [m.preset for m in report.masters] == ["handoff"]
    parts = {p.part: p for p in report.parts}
    assert parts["Violin I"].level.pan < 0 < parts["Violin II"].level.pan  # antiphonal seating
    assert parts["Violin I"].level.level_db == -3.0 and parts["Violin I"].set_by_sidecar == ("level",)
    cello = parts["Violoncello"]
    assert (cello.level.pan, cello.program, cello.soundfont) == (-0.2, 42, str(FLUIDR3))
    assert cello.set_by_sidecar == ("soundfont", "program", "pan")
    assert parts["Viola"].set_by_sidecar == () and parts["Viola"].soundfont != str(FLUIDR3)


def test_command_line_overrides_the_sidecar(quartet_with_sidecar, tmp_path):
    report = render_score(quartet_with_sidecar, out_root=tmp_path, ensemble="quartet",
                          presets=("handoff",)).report
    assert report.setting("ensemble") == Setting("quartet", "option")
    # the sidecar's layout belongs to its orchestra: with another ensemble it is dropped
    assert report.setting("layout") == Setting("standard", "default")
    assert report.setting("preset").source == "option"
    parts = {p.part: p for p in report.parts}
    assert parts["Violoncello"].level.pan == -0.2  # the parts still come from the sidecar
    assert parts["Violin I"].level.pan < parts["Violin II"].level.pan < 0  # quartet seating


def test_cli_reports_where_settings_came_from(tmp_path):
    score = tmp_path / "duo.musicxml"
    shutil.copy(DATA / "two-players-together.musicxml", score)
    _write(tmp_path, 'preset = "handoff"\n[parts.Cello]\nlevel = -1\n', "duo.toml")
    proc = run_cli("render", str(score), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "preset handoff (sidecar)" in proc.stdout and "ensemble duet (detected)" in proc.stdout
    assert f"sidecar: {tmp_path / 'duo.toml'}; parts: Cello (level)" in proc.stdout


def test_cli_error_for_a_bad_sidecar_is_one_line(tmp_path):
    score = tmp_path / "duo.musicxml"
    shutil.copy(DATA / "two-players-together.musicxml", score)
    _write(tmp_path, '[parts."Viola"]\nlevel = -1\n')
    proc = run_cli("render", str(score), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "piece.toml" in lines[0] and '"Viola"' in lines[0], proc.stderr
    assert "Violin, Cello" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
