"""The demo scores of the four large ensembles (written by scripts/demo_scores_large.py):
each is detected as its ensemble, seated as that ensemble sits, lasts 30–90 s, sounds in its
key with every transposing part at concert pitch, and one of them renders end to end."""
from __future__ import annotations

import functools
from statistics import mean

import numpy as np
import pytest

from conftest import SCORES, read
from pipeline.voices.assign import assign
from pipeline.settings.config import load_template
from pipeline.voices.ensemble import detect_ensemble
from pipeline.score.load import load
from pipeline.model import TICKS_PER_QUARTER
from pipeline.score.perform import perform
from pipeline.settings.seating import place
from pipeline.settings.soundfonts import find_soundfont

PIECES = {
    "jazz-band": "jazz-band-lantern-street-blues.musicxml",
    "brass-band": "brass-band-calder-vale.musicxml",
    "concert-band": "concert-band-harbour-lights.musicxml",
    "orchestra": "orchestra-morning-on-the-fell.musicxml",
}
NAMES = {"C": 0, "Db": 1, "D": 2, "Eb": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "Ab": 8, "A": 9,
         "Bb": 10, "B": 11}


@functools.cache
def performed(ensemble: str):
    """(performance, voices) of an ensemble's demo score, as the pipeline plays it (straight:
    swing moves off-beats only, and every instant checked below is on a beat)."""
    performance = perform(load(SCORES / PIECES[ensemble]))
    return performance, assign(performance, soundfont=find_soundfont(None))


@functools.cache
def seating(ensemble: str) -> dict:
    performance, voices = performed(ensemble)
    template = load_template(ensemble)
    placed = place([t.name for t in performance.tracks], [v.preset_name for v in voices],
                   [v.family for v in voices], seats=template.seating(), rules=template.rules,
                   stage_width=template.stage_width, chamber_depth=template.chamber_depth,
                   section_db=template.section_db)
    return {p.part: p for p in placed}


def sounding(performance, quarter: float) -> dict[str, set[int]]:
    """Pitch classes each pitched track sounds just after ``quarter`` (played quarters)."""
    tick = round(quarter * TICKS_PER_QUARTER) + 10
    out: dict[str, set[int]] = {}
    for track in performance.tracks:
        if track.is_percussion:
            continue
        pcs = {n.pitch % 12 for n in track.notes if n.on <= tick < n.off}
        if pcs:
            out[track.name] = pcs
    return out


@pytest.mark.parametrize("ensemble", list(PIECES))
def test_demo_score_is_detected_as_its_ensemble(ensemble):
    performance, voices = performed(ensemble)
    assert detect_ensemble(performance, voices) == ensemble


@pytest.mark.parametrize("ensemble", list(PIECES))
def test_demo_score_lasts_30_to_90_seconds(ensemble):
    performance, _ = performed(ensemble)
    assert 30.0 <= performance.duration_s <= 90.0


# (played quarter, chord, parts that must be sounding there): the transposing parts are among
# them, so a wrong <transpose> puts a note outside the chord
HARMONY = {
    "jazz-band": [(112, "Bb D F Ab C G", ("Alto Sax 1", "Tenor Sax 1", "Baritone Sax",
                                          "Trumpet 1", "Trumpet 4", "Guitar", "Bass")),
                  (172, "Bb D F G C", ("Alto Sax 2", "Tenor Sax 2", "Baritone Sax", "Trumpet 2",
                                       "Trombone 1", "Piano", "Guitar", "Bass"))],
    "brass-band": [(48, "Eb G Bb", ("Soprano Cornet in Eb", "Solo Cornet", "Flugelhorn",
                                    "Solo Tenor Horn", "1st Baritone", "1st Trombone",
                                    "Euphonium", "Eb Bass", "Bb Bass")),
                   (78, "Eb G Bb", ("Soprano Cornet in Eb", "Repiano Cornet", "2nd Tenor Horn",
                                    "2nd Baritone", "Bass Trombone", "Bb Bass", "Timpani"))],
    "concert-band": [(48, "Bb D F", ("Piccolo", "Clarinet in Bb 1", "Bass Clarinet", "Alto Sax 1",
                                     "Tenor Sax", "Baritone Sax", "Trumpet in Bb 1",
                                     "Horn in F 1", "Euphonium", "Tuba")),
                     (108, "Bb D F", ("Piccolo", "Clarinet in Bb 3", "Alto Sax 2", "Trumpet in Bb 3",
                                      "Horn in F 2", "Trombone 3", "Timpani"))],
    "orchestra": [(64, "G B D", ("Clarinet in Bb 1", "Horn in F 1", "Horn in F 4",
                                 "Trumpet in Bb 1", "Trumpet in Bb 2", "Violin I", "Contrabass")),
                  (92, "D F# A", ("Flute 1", "Oboe 1", "Horn in F 1", "Horn in F 2", "Violin I",
                                  "Viola", "Violoncello", "Contrabass"))],
}


@pytest.mark.parametrize("ensemble", list(PIECES))
def test_every_part_sounds_in_the_key_at_concert_pitch(ensemble):
    performance, _ = performed(ensemble)
    for quarter, chord, expected in HARMONY[ensemble]:
        allowed = {NAMES[n] for n in chord.split()}
        heard = sounding(performance, quarter)
        assert set(expected) <= set(heard), f"quarter {quarter}: silent {set(expected) - set(heard)}"
        wrong = {name: pcs - allowed for name, pcs in heard.items() if pcs - allowed}
        assert not wrong, f"quarter {quarter} ({chord}): notes outside the chord {wrong}"


def test_drum_kit_pieces_play_their_own_drums():
    # each note's <instrument id> picks its GM drum: a kit is not one drum played 400 times
    played = {}
    for ensemble in ("jazz-band", "concert-band"):
        performance, _ = performed(ensemble)
        drums = [t for t in performance.tracks if t.is_percussion]
        played[ensemble] = {n.pitch for t in drums for n in t.notes}
    assert {36, 38, 44, 49, 51} <= played["jazz-band"]  # kick, snare, hi-hat foot, crash, ride
    assert {36, 38, 49} <= played["concert-band"]  # bass drum, snare, cymbals


def test_jazz_band_seating():
    seats = seating("jazz-band")
    assert abs(seats["Alto Sax 1"].pan) <= 0.05  # the lead alto in the centre
    saxes = [seats[n] for n in ("Alto Sax 1", "Alto Sax 2", "Tenor Sax 1", "Tenor Sax 2",
                                "Baritone Sax")]
    trumpets = [seats[f"Trumpet {i}"] for i in range(1, 5)]
    assert max(s.depth for s in saxes) < min(t.depth for t in trumpets)  # saxes in front
    rhythm = [seats[n].pan for n in ("Piano", "Guitar", "Bass", "Drums")]
    assert all(p <= -0.25 for p in rhythm) or all(p >= 0.25 for p in rhythm)  # to one side


def test_brass_band_seating():
    seats = seating("brass-band")
    cornets = [p.pan for name, p in seats.items() if "Cornet" in name]
    assert len(cornets) == 5
    assert max(cornets) < seats["Euphonium"].pan


def test_concert_band_seating():
    performance, voices = performed("concert-band")
    seats = seating("concert-band")
    by_family = {fam: [seats[t.name].pan for t, v in zip(performance.tracks, voices)
                       if v.family == fam] for fam in ("woodwinds", "brass")}
    assert mean(by_family["woodwinds"]) < mean(by_family["brass"]) - 0.3
    upper = [seats[n].pan for n in ("Piccolo", "Flute 1", "Flute 2", "Oboe", "Clarinet in Bb 1",
                                    "Clarinet in Bb 2", "Clarinet in Bb 3")]
    assert max(upper) < min(by_family["brass"])


def test_orchestra_seating():
    seats = seating("orchestra")
    assert seats["Violin I"].pan < seats["Violoncello"].pan
    strings = [seats[n].depth for n in ("Violin I", "Violin II", "Viola", "Violoncello",
                                        "Contrabass")]
    horns = [seats[f"Horn in F {i}"].depth for i in range(1, 5)]
    assert min(horns) > max(strings)


# --- one demo rendered end to end: the brass band (see the module's render figures) ----------

def _rms_db(audio: np.ndarray) -> float:
    return 10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-20)


def test_brass_band_renders_with_headroom_and_its_dynamics(render_once):
    result = render_once(SCORES / PIECES["brass-band"])
    assert result.report.ensemble == "brass-band"
    mix, sr = read(result.folder / "mix.wav")
    peak_dbfs = 20 * np.log10(np.abs(mix).max())
    assert -6.0 <= peak_dbfs <= -3.0
    master, _ = read(result.folder / "master.wav")
    assert np.abs(master).max() < 1.0  # never clipped
    # the flugelhorn opens pp (bars 1–3) and plays ff in the second verse (bars 13–18)
    performance, _ = performed("brass-band")
    seconds = performance.tempo_map.seconds
    part = next(p for p in result.report.parts if p.part == "Flugelhorn")
    stem, sr = read(result.folder / part.stem)

    def window(first_bar: int, last_bar: int) -> np.ndarray:
        start, end = seconds(np.array([(first_bar - 1) * 4, last_bar * 4]) * TICKS_PER_QUARTER)
        return stem[:, int(start * sr): int(end * sr)]

    pp, ff = _rms_db(window(1, 3)), _rms_db(window(13, 18))
    assert ff - pp >= 10.0  # pp (velocity 33) against ff (112): far more than a step apart
