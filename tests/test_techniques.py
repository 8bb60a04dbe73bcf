"""Technique changes written over the staff (pizz./arco, con sord./senza sord., mute/open) and
a snap pizzicato switch the player's sound, in the state the score shows at each played bar.

tests/data/techniques.musicxml is played bars 1 2 3 1 (D.C. al Fine, Fine after bar 1):

- Violin: bar 2 "pizz.", bar 3 "arco" on beat 1 and "Pizz" on beat 3;
- Trumpet in C: bar 1 "con sord.", bar 2 "senza sord.", bar 3 "open", "Straight mute" on beat 3;
- Horn in F: bar 1 "con sord.", bar 2 "open" (General MIDI has no muted horn);
- Cello: a snap pizzicato on bar 1 beat 2;
- Bass (a jazz double bass, plucked): bar 2 "arco", bar 3 "pizz.";
- Snare Drum: the words "open" and "pizz.", which a drum channel must ignore.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from pipeline.voices.assign import assign
from pipeline.score.load import load
from pipeline.model import OWN_PROGRAM
from pipeline.model import TICKS_PER_QUARTER as Q
from pipeline.score.perform import perform, write_midi
from pipeline.render.stems import render
from pipeline.score.techniques import switches

DATA = Path(__file__).resolve().parent / "data"
MUSESCORE = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
BAR = 4 * Q
PIZZ, CONTRABASS, MUTED = 45, 43, 59


@pytest.fixture(scope="module")
def tracks():
    performance = perform(load(DATA / "techniques.musicxml"))
    return {t.name: t for t in performance.tracks}


def program_at(track, tick: int) -> int:
    """The program in force at ``tick`` (OWN_PROGRAM until the first change)."""
    changes = [c for c in track.controls if c.kind == "program_change" and c.tick <= tick]
    return changes[-1].number if changes else OWN_PROGRAM


@pytest.mark.parametrize("text, expected", [
    ("pizz.", ["pizz"]), ("Pizzicato", ["pizz"]), ("PIZZ", ["pizz"]), ("snap pizz.", ["pizz"]),
    ("arco", ["arco"]), ("col arco", ["arco"]),
    ("con sord.", ["mute"]), ("Con sordino", ["mute"]), ("mute", ["mute"]),
    ("Muted", ["mute"]), ("Cup mute", ["mute"]), ("mit Dämpfer", ["mute"]),
    ("senza sord.", ["open"]), ("Senza sordino", ["open"]), ("open", ["open"]),
    ("mute off", ["open"]), ("remove mute", ["open"]),
    ("nat.", ["normal"]), ("naturale", ["normal"]), ("ord.", ["normal"]),
    ("D.C. al Fine", []), ("Fine", []), ("dolce", []), ("cresc.", []), ("ordinary", []),
])
def test_technique_words(text, expected):
    assert switches(text) == expected


def test_violin_pizz_and_arco_and_the_dc_returns_to_arco(tracks):
    violin = tracks["Violin"]
    bars = [program_at(violin, bar * BAR + 1) for bar in range(4)]
    assert bars == [OWN_PROGRAM, PIZZ, OWN_PROGRAM, OWN_PROGRAM]  # bar 4 is bar 1 again: arco
    assert program_at(violin, 2 * BAR + 2 * Q) == PIZZ  # "Pizz" on bar 3 beat 3
    # each change once, where the music changes: the D.C. return switches back to arco
    assert [(c.tick, c.number) for c in violin.controls if c.kind == "program_change"] == [
        (BAR, PIZZ), (2 * BAR, OWN_PROGRAM), (2 * BAR + 2 * Q, PIZZ), (3 * BAR, OWN_PROGRAM)]


def test_trumpet_mute_and_open_and_the_dc_returns_muted(tracks):
    trumpet = tracks["Trumpet in C"]
    assert [program_at(trumpet, bar * BAR + 1) for bar in range(4)] == [
        MUTED, OWN_PROGRAM, OWN_PROGRAM, MUTED]
    assert program_at(trumpet, 2 * BAR + 2 * Q) == MUTED  # "Straight mute" on bar 3 beat 3


def test_no_muted_horn_in_general_midi_keeps_the_horn(tracks):
    assert not [c for c in tracks["Horn in F"].controls if c.kind == "program_change"]


def test_a_snap_pizzicato_plucks_only_its_note_on_every_pass(tracks):
    cello = tracks["Cello"]
    for start in (0, 3 * BAR):  # bar 1, and bar 1 again after the D.C.
        assert [program_at(cello, start + beat * Q) for beat in range(4)] == [
            OWN_PROGRAM, PIZZ, OWN_PROGRAM, OWN_PROGRAM]


def test_a_jazz_bass_plays_arco_on_the_contrabass(tracks):
    bass = tracks["Bass"]
    assert [program_at(bass, bar * BAR + 1) for bar in range(4)] == [
        OWN_PROGRAM, CONTRABASS, OWN_PROGRAM, OWN_PROGRAM]


def test_a_drum_channel_never_gets_a_program_change(tracks):
    snare = tracks["Snare Drum"]
    assert snare.is_percussion and snare.controls == () and snare.program is None


def test_the_voice_stays_the_first_program_and_performance_mid_names_it(tracks, tmp_path):
    performance = perform(load(DATA / "techniques.musicxml"))
    voices = assign(performance, soundfont=MUSESCORE)
    by_name = {t.name: v for t, v in zip(performance.tracks, voices)}
    # the trumpet starts con sord., yet its voice (and calibration) is the open trumpet
    assert (by_name["Violin"].program, by_name["Trumpet in C"].program) == (40, 56)
    assert by_name["Snare Drum"].bank == 128
    path = tmp_path / "performance.mid"
    write_midi(performance, path, [(v.bank, v.program) for v in voices])
    violin = next(t for t in mido.MidiFile(str(path)).tracks if t.name == "Violin")
    assert [m.program for m in violin if m.type == "program_change"] == [40, PIZZ, 40, PIZZ, 40]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The violin and trumpet rendered on MuseScore General: (performance, mono stems, rate)."""
    performance = perform(load(DATA / "techniques.musicxml"))
    performance = replace(performance, tracks=performance.tracks[:2])
    voices = assign(performance, soundfont=MUSESCORE, sample_rate=22050)
    stems = render(performance, voices, stems_dir=tmp_path_factory.mktemp("stems"),
                   sample_rate=22050, workers=1).stems
    audio = [sf.read(stem.path)[0].mean(axis=1) for stem in stems]
    return performance, audio, 22050


def test_pizzicato_notes_die_away_and_arco_notes_sustain(rendered):
    """In each quarter note, the level of its last third against its first third: a
    pizzicato string dies away by far more than 12 dB (29 dB measured), a bowed one holds."""
    performance, (violin, _), rate = rendered

    def decay_db(tick: int) -> float:
        a, b = (int(performance.tempo_map.seconds(t) * rate) for t in (tick, tick + Q))
        third = (b - a) // 3
        rms = [np.sqrt(np.mean(violin[lo:lo + third] ** 2)) for lo in (a, b - third)]
        return 20 * np.log10(rms[1] / rms[0])

    arco = [decay_db(t) for t in (Q, 2 * Q, 2 * BAR + Q, 3 * BAR + Q, 3 * BAR + 2 * Q)]
    pizz = [decay_db(t) for t in (BAR + Q, BAR + 2 * Q, 2 * BAR + 2 * Q, 2 * BAR + 3 * Q)]
    assert min(arco) > -6 and max(pizz) < -12, (arco, pizz)


def test_the_muted_trumpet_sounds_muted_again_after_the_dc(rendered):
    """The spectral centroid of a quarter second of each bar: the muted trumpet's is far
    higher than the open one's (3.7 against 2.6 kHz measured); bar 4, bar 1 after the D.C.,
    sounds as bar 1 did."""
    performance, (_, trumpet), rate = rendered

    def centroid_hz(bar: int) -> float:
        a = int(performance.tempo_map.seconds(bar * BAR + Q // 4) * rate)
        spectrum = np.abs(np.fft.rfft(trumpet[a:a + rate // 4] * np.hanning(rate // 4)))
        freqs = np.fft.rfftfreq(rate // 4, 1 / rate)
        return float((freqs * spectrum).sum() / spectrum.sum())

    muted, open_, again = centroid_hz(0), centroid_hz(1), centroid_hz(3)
    assert muted > 1.2 * open_
    assert again == pytest.approx(muted, rel=0.02)


def test_the_presets_changed_to_are_decoded_beside_the_render_once(tmp_path, monkeypatch):
    """A silent synth selects each preset the parts change to (once, however many parts
    change to it), not the parts' own: the render's synths load those themselves at their
    start. Whether it has them ready or not, the stems are the same, sample for sample."""
    import pipeline.render.stems as render_module

    performance = perform(load(DATA / "techniques.musicxml"))
    performance = replace(performance, tracks=performance.tracks[:2])
    voices = assign(performance, soundfont=MUSESCORE, sample_rate=22050)
    changes = render_module.preset_changes(performance, voices)
    assert sorted({program for _, program in changes}) == [PIZZ, MUTED]

    def stems(folder):
        made = render(performance, voices, stems_dir=tmp_path / folder, sample_rate=22050,
                      workers=2).stems
        return [sf.read(stem.path)[0] for stem in made]

    held = stems("held")

    monkeypatch.setattr(render_module, "preset_changes", lambda performance, voices: [])
    for a, b in zip(held, stems("unheld")):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("score", [DATA / "techniques.musicxml",
                                   DATA.parent.parent / "scores" / "string-quartet.musicxml",
                                   DATA.parent.parent / "scores" / "piano-nocturne.musicxml"])
def test_the_guess_from_the_part_list_names_the_presets_the_render_uses(score):
    """Read from the part list and the words alone (no music21), the guess holds every
    preset the render then selects: each part's voice and the technique programs."""
    from pipeline.speed.preset_guess import likely_presets
    from pipeline.render.stems import preset_changes

    performance = perform(load(score))
    voices = assign(performance, soundfont=MUSESCORE)
    used = {(v.soundfont, v.bank, v.program) for v in voices} | {
        (v.soundfont, v.bank, program) for v, program in preset_changes(performance, voices)}
    guessed = {(v.soundfont, v.bank, program) for v, program in likely_presets(score, MUSESCORE)}
    assert used <= guessed


def test_no_guess_for_midi_or_a_broken_file(tmp_path):
    from pipeline.speed.preset_guess import likely_presets
    broken = tmp_path / "broken.musicxml"
    broken.write_text("<score-partwise><part-list><score-part", encoding="utf-8")
    assert likely_presets(broken, MUSESCORE) == []
    assert likely_presets(DATA.parent.parent / "scores" / "clarinet-and-bass.mid", MUSESCORE) == []
