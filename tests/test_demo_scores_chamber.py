"""The chamber and choir demo scores (``scripts/demo_scores.py``): each is heard as the ensemble
it is written for, seated as that ensemble sits, 30–90 s long, mixed with headroom, and its
written dynamics survive into the stems."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SCORES, read
from pipeline.score import form
from pipeline.voices.assign import assign
from pipeline.voices.ensemble import detect_ensemble
from pipeline.score.load import load
from pipeline.model import TICKS_PER_QUARTER
from pipeline.score.perform import perform
from pipeline.settings.soundfonts import find_soundfont

# score → (ensemble, the part measured, a bar marked pp, a bar marked ff in that part)
DEMOS = {
    "piano-nocturne.musicxml": ("solo", "Piano", 21, 15),
    "duet-romance.musicxml": ("duet", "Violin", 13, 12),
    "trio-pastorale.musicxml": ("trio", "Violin", 15, 14),
    "string-quartet.musicxml": ("quartet", "Violin I", 13, 12),
    "quintet-divertimento.musicxml": ("quintet", "Flute", 13, 12),
    "sextet-sarabande.musicxml": ("sextet", "Violin I", 9, 8),
    "choir-evening-hymn.musicxml": ("choir", "Soprano", 5, 10),
}
# pp is velocity 33 and ff 112: FluidSynth's velocity curve makes that about 20 dB; 6 dB is a
# margin for the ff bar's release and the soundfont's own velocity layers
PP_UNDER_FF_DB = 6.0


def _perform(name: str):
    loaded = load(SCORES / name)
    return loaded, perform(loaded)


@pytest.mark.parametrize("name", DEMOS)
def test_demo_is_heard_as_its_ensemble_and_lasts_30_to_90_s(name):
    _, performance = _perform(name)
    voices = assign(performance, soundfont=find_soundfont(None))
    assert detect_ensemble(performance, voices) == DEMOS[name][0]
    assert 30.0 <= performance.duration_s <= 90.0, performance.duration_s


def test_transposing_winds_sound_at_concert_pitch():
    """The quintet's clarinet in B♭ and horn in F are written a tone and a fifth above what
    they play: both end the piece on concert C (C5 and C4) under the flute's A5."""
    _, performance = _perform("quintet-divertimento.musicxml")
    last = {t.name: max(t.notes, key=lambda n: n.on).pitch for t in performance.tracks}
    assert last["Flute"] == 81
    assert last["Clarinet in B♭"] == 72
    assert last["Horn in F"] == 60


def test_choir_parts_carry_their_words():
    loaded, _ = _perform("choir-evening-hymn.musicxml")
    for part in loaded.data.parts:
        words = [n.lyric for n in part.recurse().notes if n.lyric]
        assert words[:3] == ["Qui", "et", "falls"] and words[-2:] == ["A", "men."], part.partName


@pytest.fixture(scope="module")
def rendered(render_once):
    return {name: render_once(SCORES / name) for name in DEMOS}


def _pans(result) -> dict[str, float]:
    return {p.part: p.level.pan for p in result.report.parts}


def _depths(result) -> dict[str, float]:
    return {p.part: p.level.depth for p in result.report.parts}


def test_each_demo_renders_with_its_detected_template(rendered):
    for name, result in rendered.items():
        assert result.report.ensemble == DEMOS[name][0], name
        assert result.report.ensemble_chosen_by == "detected"


def test_performance_mid_names_a_b_flat_clarinet_in_latin_1(rendered):
    """MIDI track names are Latin-1: 'Clarinet in B♭' is written 'Clarinet in Bb'."""
    import mido

    mid = mido.MidiFile(str(rendered["quintet-divertimento.musicxml"].folder / "performance.mid"))
    names = [next(m.name for m in t if m.type == "track_name") for t in mid.tracks[1:]]
    assert names == ["Flute", "Oboe", "Clarinet in Bb", "Horn in F", "Bassoon"]


def test_seating_follows_each_template(rendered):
    pans = {name: _pans(r) for name, r in rendered.items()}
    depths = {name: _depths(r) for name, r in rendered.items()}
    assert pans["piano-nocturne.musicxml"]["Piano"] == 0.0
    duet = pans["duet-romance.musicxml"]
    assert duet["Violin"] < 0.0 < duet["Piano"]  # the violinist stands left of the piano
    trio, trio_depth = pans["trio-pastorale.musicxml"], depths["trio-pastorale.musicxml"]
    assert trio["Violin"] < trio["Piano"] < trio["Violoncello"]
    assert trio_depth["Piano"] > trio_depth["Violin"]  # the open lid sits behind the strings
    quartet = pans["string-quartet.musicxml"]
    assert quartet["Violin I"] < quartet["Violin II"] < quartet["Viola"] < quartet["Violoncello"]
    winds, wind_depth = pans["quintet-divertimento.musicxml"], depths["quintet-divertimento.musicxml"]
    assert winds["Flute"] < winds["Oboe"] < winds["Clarinet in B♭"] < winds["Bassoon"]
    assert wind_depth["Horn in F"] == max(wind_depth.values())  # the horn's bell faces the back
    sextet = pans["sextet-sarabande.musicxml"]
    order = ["Violin I", "Violin II", "Viola I", "Viola II", "Violoncello I", "Violoncello II"]
    assert [sextet[p] for p in order] == sorted(sextet.values())
    choir = pans["choir-evening-hymn.musicxml"]
    assert choir["Soprano"] < choir["Alto"] < choir["Tenor"] < choir["Bass"]


def test_mixes_keep_their_headroom(rendered):
    for name, result in rendered.items():
        mix, _ = read(result.folder / "mix.wav")
        peak_dbfs = 20 * np.log10(np.abs(mix).max())
        assert -6.0 <= peak_dbfs <= -3.0, (name, peak_dbfs)  # never clipped: well under 0 dBFS


def _bar_seconds(name: str, bar: int) -> tuple[float, float]:
    """Where the last playing of written ``bar`` starts and ends in the performance, seconds."""
    loaded, performance = _perform(name)
    tl = form.timeline(loaded.data, source=SCORES / name)
    start = tl.played[bar - 1][-1]
    end = start + float(loaded.data.parts[0].measure(bar).barDuration.quarterLength)
    ticks = np.array([start, end]) * TICKS_PER_QUARTER
    return tuple(float(s) for s in performance.tempo_map.seconds(ticks.round().astype(int)))


def _rms_db(audio: np.ndarray, sr: int, start_s: float, end_s: float) -> float:
    part = audio[:, int(start_s * sr): int(end_s * sr)]
    return 10 * np.log10(np.mean(part.astype(np.float64) ** 2) + 1e-20)


@pytest.mark.parametrize("name", DEMOS)
def test_a_pp_bar_measures_quieter_than_an_ff_bar_of_the_same_stem(name, rendered):
    _, part, pp_bar, ff_bar = DEMOS[name]
    result = rendered[name]
    stem = next(p.stem for p in result.report.parts if p.part == part)
    audio, sr = read(result.folder / stem)
    pp_start, pp_end = _bar_seconds(name, pp_bar)
    ff_start, ff_end = _bar_seconds(name, ff_bar)
    # the pp bar is measured from a quarter of the way in, past the release of what came before
    pp = _rms_db(audio, sr, pp_start + 0.25 * (pp_end - pp_start), pp_end)
    ff = _rms_db(audio, sr, ff_start, ff_end)
    assert pp < ff - PP_UNDER_FF_DB, (name, pp, ff)


def test_the_generator_reproduces_the_committed_files(tmp_path, monkeypatch):
    """``scripts/demo_scores.py`` writes exactly the scores in ``scores/`` (regenerate them
    after changing a piece)."""
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "scripts" / "demo_scores.py"
    spec = importlib.util.spec_from_file_location("demo_scores", script)
    demo_scores = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "demo_scores", demo_scores)  # its dataclasses look it up
    spec.loader.exec_module(demo_scores)
    assert {f"{p.slug}.musicxml" for p in demo_scores.PIECES} == set(DEMOS)
    for piece in demo_scores.PIECES:
        written = demo_scores.write(piece, tmp_path)
        assert written.read_text(encoding="utf-8") == (SCORES / written.name).read_text(
            encoding="utf-8"), written.name
