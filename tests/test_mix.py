"""Mixing as a listener hears it: seating, balance, depth, headroom, mix stems."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import FLUIDR3, MUSESCORE, SCORES, read
from pipeline.settings import instruments
from pipeline.voices.assign import assign
from pipeline.render.calibration import calibration_db, cache_file
from pipeline.settings.config import _rules, _seats, load_template
from pipeline.errors import TemplateError
from pipeline.dsp.loudness import integrated_lufs
from pipeline.dsp.audio import BLOCK_FRAMES
from pipeline.mix.mixer import mix, placements
from pipeline.model import Note, Performance, Stem, Stems, Track, Voice
from pipeline.render.stems import render
from pipeline.settings.seating import place

SR = 48000
TPQ = 960


def _scale_track(name: str, low: int, velocity: int = 80, beats: int = 16) -> Track:
    """Crotchets up and down a ninth from ``low``: one player at one dynamic."""
    steps = [0, 2, 4, 5, 7, 9, 11, 12, 14, 12, 11, 9, 7, 5, 4, 2]
    notes = tuple(Note(i * TPQ, (i + 1) * TPQ - 60, low + steps[i % len(steps)], velocity)
                  for i in range(beats))
    return Track(name, name, notes)


def _quartet(velocity: int = 80) -> Performance:
    return Performance("mf quartet", "", (_scale_track("Violin I", 67, velocity),
                                           _scale_track("Violin II", 62, velocity),
                                           _scale_track("Viola", 55, velocity),
                                           _scale_track("Violoncello", 43, velocity)))


def _stem_lufs(stems: Stems) -> list[float]:
    return [integrated_lufs(read(s.path)[0], stems.sample_rate) for s in stems.stems]


@pytest.mark.parametrize("soundfont", [FLUIDR3, MUSESCORE], ids=["FluidR3", "MuseScore"])
def test_calibration_brings_a_quartet_at_mf_within_a_few_lu(soundfont, tmp_path):
    if not soundfont.exists():
        pytest.skip(f"{soundfont} is not installed")
    performance = _quartet()
    voices = assign(performance, soundfont=soundfont, sample_rate=SR)
    stems = render(performance, voices, stems_dir=tmp_path / "stems", sample_rate=SR)
    raw = np.array(_stem_lufs(stems))
    gains = np.array(calibration_db(performance, voices, sample_rate=SR))
    calibrated = raw + gains
    # four players at one dynamic: within 3 LU of each other (the reference notes are in each
    # part's register but not its exact notes, and bowing attacks differ a little)
    assert calibrated.max() - calibrated.min() <= 3.0, (raw, calibrated)
    assert cache_file().exists()
    # the second time nothing is rendered: the figures come from the cache, unchanged
    assert calibration_db(performance, voices, sample_rate=SR) == tuple(gains)


def _voice(family: str, name: str = "", percussion: bool = False) -> Voice:
    return Voice(FLUIDR3, 128 if percussion else 0, 0, name, percussion, family, "test",
                 _canonical(name, family))


def _canonical(name: str, family: str) -> str:
    """The instrument-map name the assign stage gives a part of this name and family."""
    info = (instruments.voice_for(name) if family == "voices" else None) or instruments.lookup(name)
    return info.name if info else ""


def _place(template: str, parts: list[tuple[str, str]], layout: str | None = None):
    t = load_template(template)
    return {p.part: p for p in place([n for n, _ in parts], [_canonical(n, f) for n, f in parts],
                                     [f for _, f in parts], seats=t.seating(layout),
                                     rules=t.rules, stage_width=t.stage_width,
                                     chamber_depth=t.chamber_depth, section_db=t.section_db)}


ORCHESTRA = [("Flute 1", "woodwinds"), ("Oboe", "woodwinds"), ("Clarinet in B♭", "woodwinds"),
             ("Bassoon", "woodwinds"), ("Horn in F 1", "brass"), ("Horn in F 2", "brass"),
             ("Trumpet in C", "brass"), ("Trombone", "brass"), ("Timpani", "percussion"),
             ("Violin I", "strings"), ("Violin II", "strings"), ("Viola", "strings"),
             ("Violoncello", "strings"), ("Contrabass", "strings")]


def test_orchestra_standard_seating():
    s = _place("orchestra", ORCHESTRA)
    assert s["Violin I"].pan < s["Violin II"].pan < 0 < s["Viola"].pan < s["Violoncello"].pan
    # basses behind the cellos, toward the centre
    assert s["Contrabass"].depth > s["Violoncello"].depth
    assert abs(s["Contrabass"].pan) < abs(s["Violoncello"].pan)
    # strings in front of woodwinds, woodwinds in front of brass, percussion at the back
    assert max(s[n].depth for n in ("Violin I", "Viola", "Violoncello")) < s["Flute 1"].depth
    assert s["Bassoon"].depth < s["Horn in F 1"].depth < s["Timpani"].depth
    assert all(abs(s[n].pan) <= 0.2 for n in ("Flute 1", "Oboe", "Clarinet in B♭", "Bassoon"))
    assert s["Horn in F 1"].pan < s["Horn in F 2"].pan  # two players share the seat, in order
    assert s["Violin I"].bus == "strings" and s["Trumpet in C"].bus == "brass"


def test_orchestra_antiphonal_puts_second_violins_on_the_right():
    s = _place("orchestra", ORCHESTRA, layout="antiphonal")
    assert s["Violin I"].pan < 0 < s["Violin II"].pan
    assert s["Violoncello"].pan < s["Viola"].pan
    with pytest.raises(TemplateError, match="antiphonal"):
        load_template("orchestra").seating("backwards")


def test_jazz_band_saxes_in_front_lead_alto_centre():
    parts = [("Alto Sax 1", "saxes"), ("Alto Sax 2", "saxes"), ("Tenor Sax 1", "saxes"),
             ("Tenor Sax 2", "saxes"), ("Baritone Sax", "saxes")] + \
        [(f"Trumpet {i}", "brass") for i in range(1, 5)] + \
        [(f"Trombone {i}", "brass") for i in range(1, 4)] + [("Bass Trombone", "brass")] + \
        [("Piano", "keyboards"), ("Guitar", "plucked"), ("Bass", "plucked"), ("Drums", "percussion")]
    s = _place("jazz-band", parts)
    assert s["Alto Sax 1"].pan == 0.0
    order = ["Tenor Sax 1", "Alto Sax 1", "Alto Sax 2", "Tenor Sax 2", "Baritone Sax"]
    assert [s[n].pan for n in order] == sorted(s[n].pan for n in order)
    assert s["Alto Sax 1"].gain_db > s["Alto Sax 2"].gain_db  # the lead voice up
    assert s["Alto Sax 1"].depth < s["Trombone 1"].depth < s["Trumpet 1"].depth
    assert s["Bass Trombone"].seat == "trombones" and s["Bass"].seat == "bass"
    rhythm = [s[n] for n in ("Piano", "Guitar", "Bass", "Drums")]
    assert all(p.pan < -0.2 and p.bus == "rhythm" for p in rhythm)  # to one side


def test_brass_band_and_concert_band_sides():
    bb = _place("brass-band", [("Soprano Cornet", "brass"), ("Solo Cornet", "brass"),
                               ("Flugelhorn", "brass"), ("Solo Tenor Horn", "brass"),
                               ("1st Baritone", "brass"), ("Euphonium", "brass"),
                               ("Eb Bass", "brass"), ("Bb Bass", "brass")])
    assert bb["Solo Cornet"].pan < -0.3 and bb["Soprano Cornet"].pan < -0.3
    assert bb["Euphonium"].pan > 0.3 and bb["Eb Bass"].pan > 0.3
    assert abs(bb["Solo Tenor Horn"].pan) < 0.3 and abs(bb["1st Baritone"].pan) < 0.3
    cb = _place("concert-band", [("Flute", "woodwinds"), ("Clarinet 1", "woodwinds"),
                                 ("Trumpet 1", "brass"), ("Trombone", "brass"), ("Tuba", "brass"),
                                 ("Percussion", "percussion")])
    assert cb["Flute"].pan < 0 and cb["Clarinet 1"].pan < 0
    assert cb["Trumpet 1"].pan > 0 and cb["Trombone"].pan > 0
    assert abs(cb["Tuba"].pan) < 0.2 and cb["Percussion"].depth > 0.9


def test_brass_band_solo_cornet_leads_its_row():
    # a real band's front row, from the outside in: solo, repiano, 2nd, 3rd cornets
    bb = _place("brass-band", [("2nd Cornet", "brass"), ("3rd Cornet", "brass"),
                               ("Repiano Cornet", "brass"), ("Solo Cornet", "brass")])
    order = ["Solo Cornet", "Repiano Cornet", "2nd Cornet", "3rd Cornet"]
    pans = [bb[n].pan for n in order]
    assert pans == sorted(pans) and pans[0] < pans[-1]


def test_singers_and_instruments_named_alike():
    from pipeline.settings.instruments import voice_for
    assert voice_for("Alto").name == "Alto" and voice_for("Bass").name == "Bass Voice"
    assert voice_for("Contralto").name == "Alto"
    for instrument in ("Alto Sax", "Bass Clarinet", "Tenor Horn", "Bass Trombone",
                       "Soprano Cornet", "Baritone Sax"):
        assert voice_for(instrument) is None, instrument


def test_choir_satb_left_to_right_and_blocks():
    parts = [("Soprano", "voices"), ("Alto", "voices"), ("Tenor", "voices"), ("Bass", "voices")]
    s = _place("choir", parts)
    assert s["Soprano"].pan < s["Alto"].pan < s["Tenor"].pan < s["Bass"].pan
    b = _place("choir", parts, layout="blocks")
    assert b["Soprano"].depth < b["Tenor"].depth and b["Soprano"].pan < 0 < b["Alto"].pan


def test_chamber_rules_and_score_order():
    q = _place("quartet", [("Violoncello", "strings"), ("Viola", "strings"),
                           ("Violin 2", "strings"), ("Violin 1", "strings")])
    # the string quartet rule seats vn1, vn2, va, vc left to right whatever the score order
    assert q["Violin 1"].pan < q["Violin 2"].pan < q["Viola"].pan < q["Violoncello"].pan
    assert q["Viola"].seat == "string quartet"
    t = _place("trio", [("Violin", "strings"), ("Piano", "keyboards"), ("Cello", "strings")])
    assert t["Violin"].pan < t["Piano"].pan < t["Cello"].pan
    assert t["Piano"].depth > t["Violin"].depth  # the piano sits behind in a piano trio
    other = _place("trio", [("Flute", "woodwinds"), ("Guitar", "plucked"), ("Marimba", "percussion")])
    assert other["Flute"].pan < other["Guitar"].pan < other["Marimba"].pan  # score order
    assert {p.seat for p in other.values()} == {"score order"}


def test_bad_seating_data_names_file_and_key():
    where = "templates/x.toml [[seat]]"
    with pytest.raises(TemplateError, match=r"templates/x\.toml.*'pan'"):
        _seats([{"name": "violins", "match": ["violin"], "pan": 3, "depth": 0.1}], where)
    with pytest.raises(TemplateError, match=r"templates/x\.toml.*'families'"):
        _seats([{"name": "x", "families": ["kazoos"], "pan": 0, "depth": 0}], where)
    with pytest.raises(TemplateError, match=r"'instruments'"):
        _rules([{"instruments": ["Violin", "Theremin"], "pans": [0, 0], "depths": [0, 0]}],
               "templates/x.toml [[rule]]")


def _tone_stem(path, seconds: float, sr: int = SR, level: float = 0.1, hz: float = 440.0,
               quiet_from: float | None = None):
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    x = level * np.sin(2 * np.pi * hz * t)
    if quiet_from is not None:
        x[int(quiet_from * sr):] *= 10 ** (-20 / 20)  # a pp passage 20 dB under the ff
    sf.write(str(path), np.stack([x, x]).T.astype(np.float32), sr, subtype="FLOAT")
    return path


def _stems(tmp_path, names, **kw) -> Stems:
    paths = [_tone_stem(tmp_path / f"{i + 1:02d}-{n.lower().replace(' ', '-')}.wav", 4.0,
                        hz=220.0 * (i + 1), **kw) for i, n in enumerate(names)]
    return Stems(SR, int(4.0 * SR), tuple(Stem(i, n, p) for i, (n, p)
                                          in enumerate(zip(names, paths))))


def test_mix_stems_sum_to_the_mix_and_headroom(tmp_path):
    names = ["Violin I", "Violin II", "Viola", "Violoncello"]
    stems = _stems(tmp_path, names, quiet_from=2.0)
    voices = tuple(_voice("strings", n) for n in ["Violin", "Violin", "Viola", "Cello"])
    result = mix(stems, voices, load_template("quartet"), mix_stems_dir=tmp_path / "mix-stems")
    audio = result.audio
    peak_db = 20 * np.log10(np.abs(audio).max())
    assert -6.0 <= peak_db <= -3.0
    total = sum(read(tmp_path / "mix-stems" / s.path.name)[0] for s in stems.stems)
    assert total.shape == audio.shape
    err_db = 20 * np.log10(np.abs(total - audio).max() / np.abs(audio).max())
    assert err_db < -60.0
    # a mix stem keeps its own dynamics: the pp half measures about 20 dB under the ff half
    one, _ = read(tmp_path / "mix-stems" / stems.stems[0].path.name)
    ff = integrated_lufs(one[:, int(0.5 * SR):int(1.9 * SR)], SR)
    pp = integrated_lufs(one[:, int(2.6 * SR):int(3.9 * SR)], SR)
    assert ff - pp == pytest.approx(20.0, abs=1.5)  # the room's tail adds a little to the pp
    # violin I sits left of the cello in the mix itself
    left, right = one[0].std(), one[1].std()
    cello, _ = read(tmp_path / "mix-stems" / stems.stems[3].path.name)
    assert left > right and cello[1].std() > cello[0].std()


def test_a_resting_player_changes_nothing_in_the_mix(tmp_path):
    # the horn rests for most of the piece (exact digital silence, as FluidSynth renders a
    # rest): its silent blocks are skipped, and the mix is what the full filtering gives on a
    # rest that is not quite silent (1e-30: far below anything audible, but not zero)
    import soundfile as sf

    seconds = 8.0
    frames = int(seconds * SR)
    names = ["Violin I", "Horn"]
    voices = (_voice("strings", "Violin"), _voice("brass", "Horn"))

    def stems_with(rest_value: float, folder) -> Stems:
        folder.mkdir()
        violin = _tone_stem(folder / "01-violin-i.wav", seconds, hz=440.0)
        t = np.arange(frames) / SR
        horn = 0.2 * np.sin(2 * np.pi * 220.0 * t)
        # from a block's first frame (the filters and the pre-delay still ring into it) for
        # four whole blocks
        horn[BLOCK_FRAMES: 5 * BLOCK_FRAMES] = rest_value
        sf.write(str(folder / "02-horn.wav"), np.stack([horn, horn]).T.astype(np.float32), SR,
                 subtype="FLOAT")
        return Stems(SR, frames, (Stem(0, names[0], violin), Stem(1, names[1], folder / "02-horn.wav")))

    skipped = mix(stems_with(0.0, tmp_path / "rest"), voices, load_template("orchestra"))
    filtered = mix(stems_with(1e-30, tmp_path / "tiny"), voices, load_template("orchestra"),
                   workers=1)
    assert skipped.audio.shape == filtered.audio.shape
    np.testing.assert_allclose(skipped.audio, filtered.audio, rtol=0, atol=1e-7)
    for a, b in zip(skipped.stem_levels, filtered.stem_levels):
        assert (a.loudness_lufs, a.mix_lufs, a.peak_dbfs) == \
            (b.loudness_lufs, b.mix_lufs, b.peak_dbfs)


def test_every_frame_of_the_mix_is_written_before_it_is_read(tmp_path):
    # the mix's array is not zeroed first (AudioBuffers.empty): filled with NaN instead, the
    # mix must come out the same, through blocks where every player rests and the room's tail
    import soundfile as sf


    seconds = 10.0
    frames = int(seconds * SR)
    names = ["Violin I", "Violoncello"]
    voices = (_voice("strings", "Violin"), _voice("strings", "Cello"))
    t = np.arange(frames) / SR
    paths = []
    for i, hz in enumerate((440.0, 110.0)):
        x = 0.2 * np.sin(2 * np.pi * hz * t)
        x[BLOCK_FRAMES: 5 * BLOCK_FRAMES] = 0.0  # both rest for four whole blocks
        paths.append(tmp_path / f"{i + 1:02d}.wav")
        sf.write(str(paths[-1]), np.stack([x, x]).T.astype(np.float32), SR, subtype="FLOAT")
    stems = Stems(SR, frames, tuple(Stem(i, n, p) for i, (n, p) in enumerate(zip(names, paths))))

    class Filled:  # the mix's array comes filled with a value, not zeros
        def __init__(self, fill: float):
            self.fill = fill

        def empty(self, channels: int, frames: int) -> np.ndarray:
            return np.full((channels, frames), self.fill, np.float32)

    def mixed(fill: float) -> np.ndarray:
        return mix(stems, voices, load_template("quartet"), buffers=Filled(fill)).audio

    zeroed, poisoned = mixed(0.0), mixed(np.nan)
    assert zeroed.shape[1] > frames  # the room's decay is kept
    np.testing.assert_array_equal(poisoned, zeroed)


def test_partitioned_reverb_is_the_plain_convolution():
    from scipy.signal import fftconvolve

    from pipeline.mix.mixer import _Reverb

    rng = np.random.default_rng(11)
    block = 1024
    ir = (rng.standard_normal((2, 3 * block + 100)) * np.exp(-np.arange(3 * block + 100) / 900)
          ).astype(np.float32)
    x = (rng.standard_normal((2, 9 * block + 301)) * 0.3).astype(np.float32)  # odd: a short last block
    x[:, 2 * block: 7 * block] = 0.0  # long enough for the delay line to fall silent
    expected = np.stack([fftconvolve(x[c].astype(np.float64), ir[c].astype(np.float64))
                         for c in range(2)])
    stream = _Reverb(ir, block).stream()
    got, carried = [], np.zeros((2, 0), dtype=np.float32)
    for start in range(0, x.shape[1], block):
        piece = x[:, start:start + block]
        wet = stream.process(piece if piece.any() else None)
        n = piece.shape[1]
        got.append(np.zeros((2, n), dtype=np.float32) if wet is None else wet[:, :n])
        carried = np.zeros((2, 0), dtype=np.float32) if wet is None else wet[:, n:]
    got.append(stream.tail(carried, ir.shape[1] - 1))
    got = np.concatenate(got, axis=1)
    assert got.shape == expected.shape
    # single-precision FFTs: about −130 dB of the signal; −110 dB allowed
    assert np.abs(got - expected).max() < 10 ** (-110 / 20) * np.abs(expected).max()


def test_back_row_is_quieter_wetter_and_duller(tmp_path):
    # the same signal at the front (violin I) and at the back (timpani) of the orchestra
    names = ["Violin I", "Timpani"]
    paths = [_tone_stem(tmp_path / f"{i}.wav", 4.0, hz=3000.0) for i in range(2)]
    stems = Stems(SR, 4 * SR, tuple(Stem(i, n, p) for i, (n, p) in enumerate(zip(names, paths))))
    voices = (_voice("strings", "Violin"), _voice("percussion", "Timpani"))
    result = mix(stems, voices, load_template("orchestra"), mix_stems_dir=tmp_path / "ms")
    front, back = result.stem_levels
    assert back.depth > front.depth
    assert back.gain_db < front.gain_db          # quieter
    assert back.send_db > front.send_db          # more of it in the room
    assert back.predelay_ms < front.predelay_ms  # the room follows sooner
    assert back.damping_hz < front.damping_hz    # the highs go first
    assert back.mix_lufs < front.mix_lufs


def test_placements_use_the_voices_instrument_when_the_part_name_is_unknown(tmp_path):
    stems = _stems(tmp_path, ["Part 1", "Part 2"])
    voices = (_voice("brass", "Trumpet"), _voice("strings", "Violin"))
    seats = placements(stems, voices, load_template("orchestra"))
    assert [p.seat for p in seats] == ["trumpets", "violins"]  # the assign stage said what they are


def test_rendered_quartet_has_mix_stems_when_asked_and_seating(render_once):
    result = render_once(SCORES / "string-quartet.musicxml", mix_stems=True)  # asked for
    parts = {p.part: p for p in result.report.parts}
    assert parts["Violin I"].level.pan < parts["Violoncello"].level.pan
    for p in parts.values():
        assert (result.folder / p.level.mix_stem).exists()
        assert p.level.calibration_db is not None
    # the mix stems sum to mix.wav: within its 24-bit rounding and the single-precision room
    # convolutions (one per player for the stems, one of the summed sends for the mix): −100 dB
    total = sum(read(result.folder / p.level.mix_stem)[0] for p in parts.values())
    mixed, _ = read(result.folder / "mix.wav")
    assert total.shape == mixed.shape
    assert np.abs(total - mixed).max() < 1e-5
    # by default there are none: they cost a room convolution and a file per player
    plain = render_once(SCORES / "string-quartet.musicxml")
    assert not (plain.folder / "mix-stems").exists()
    assert all(p.level.mix_stem is None for p in plain.report.parts)


@pytest.mark.parametrize("soundfont", [FLUIDR3, MUSESCORE], ids=["FluidR3", "MuseScore"])
def test_calibration_evens_out_mixed_instruments(soundfont, tmp_path):
    if not soundfont.exists():
        pytest.skip(f"{soundfont} is not installed")
    performance = Performance("mf winds", "", (
        _scale_track("Flute", 72), _scale_track("Trumpet", 60), _scale_track("Bassoon", 43),
        _scale_track("Violin", 67), _scale_track("Tuba", 36), _scale_track("Alto Sax", 60)))
    voices = assign(performance, soundfont=soundfont, sample_rate=SR)
    stems = render(performance, voices, stems_dir=tmp_path / "stems", sample_rate=SR)
    raw = np.array(_stem_lufs(stems))
    calibrated = raw + np.array(calibration_db(performance, voices, sample_rate=SR))
    # GM presets at one velocity differ by several LU (about 8 here); after calibration mf is mf
    assert np.ptp(calibrated) <= 2.5 and np.ptp(calibrated) < np.ptp(raw) / 2, (raw, calibrated)


def _detect(parts: list[tuple[str, str, int]]) -> str:
    from pipeline.voices.ensemble import detect_ensemble

    tracks = tuple(Track(n, n, ()) for n, _, _ in parts)
    voices = tuple(Voice(FLUIDR3, 128 if f == "drums" else 0, p, n,
                         f == "drums", "percussion" if f == "drums" else f, "test")
                   for n, f, p in parts)
    return detect_ensemble(Performance("x", "", tracks), voices)


BIG_BAND = [(f"Alto Sax {i}", "saxes", 65) for i in (1, 2)] + \
    [(f"Tenor Sax {i}", "saxes", 66) for i in (1, 2)] + [("Baritone Sax", "saxes", 67)] + \
    [(f"Trumpet {i}", "brass", 56) for i in range(1, 5)] + \
    [(f"Trombone {i}", "brass", 57) for i in range(1, 4)] + [("Bass Trombone", "brass", 57)] + \
    [("Piano", "keyboards", 0), ("Guitar", "plucked", 26), ("Bass", "plucked", 32),
     ("Drums", "drums", 0)]
BRASS_BAND = [("Soprano Cornet", "brass", 56), ("Solo Cornet", "brass", 56),
              ("Repiano Cornet", "brass", 56), ("Flugelhorn", "brass", 56),
              ("Solo Tenor Horn", "brass", 60), ("1st Baritone", "brass", 58),
              ("Euphonium", "brass", 58), ("Trombone", "brass", 57), ("Eb Bass", "brass", 58),
              ("Percussion", "drums", 0)]
CONCERT_BAND = [("Flute", "woodwinds", 73), ("Oboe", "woodwinds", 68),
                ("Clarinet 1", "woodwinds", 71), ("Clarinet 2", "woodwinds", 71),
                ("Alto Sax", "saxes", 65), ("Tenor Sax", "saxes", 66), ("Trumpet 1", "brass", 56),
                ("Trumpet 2", "brass", 56), ("Horn", "brass", 60), ("Trombone", "brass", 57),
                ("Euphonium", "brass", 58), ("Tuba", "brass", 58),
                ("String Bass", "strings", 43), ("Percussion", "drums", 0)]
ORCHESTRA_PARTS = [(n, f, 0) for n, f in ORCHESTRA]


@pytest.mark.parametrize("parts, expected", [
    (BIG_BAND, "jazz-band"), (BRASS_BAND, "brass-band"), (CONCERT_BAND, "concert-band"),
    (ORCHESTRA_PARTS, "orchestra"),
    ([("Violin I", "strings", 40), ("Violin II", "strings", 40), ("Viola", "strings", 41),
      ("Cello", "strings", 42), ("Clarinet", "woodwinds", 71)], "quintet"),
    ([(f"Violin {i}", "strings", 40) for i in range(1, 9)], "orchestra"),  # string orchestra
    ([("Soprano", "voices", 52), ("Alto", "voices", 52), ("Tenor", "voices", 53),
      ("Bass", "voices", 53)], "choir"),
], ids=["big band", "brass band", "concert band (with string bass)", "orchestra",
        "clarinet quintet", "string orchestra", "SATB"])
def test_detected_ensemble(parts, expected):
    assert _detect(parts) == expected


def _two_stem_mix(tmp_path, hz: float, voices, template: str = "duet", **kw):
    names = [v.instrument for v in voices]
    paths = [_tone_stem(tmp_path / f"{hz:g}-{i}.wav", 2.0, hz=hz, **kw) for i in range(2)]
    stems = Stems(SR, 2 * SR, tuple(Stem(i, n, p) for i, (n, p) in enumerate(zip(names, paths))))
    return mix(stems, voices, load_template(template), mix_stems_dir=tmp_path / f"ms-{hz:g}")


def test_family_eq_takes_the_edge_off_strings_only(tmp_path):
    voices = (_voice("strings", "Violin"), _voice("woodwinds", "Flute"))
    harsh = _two_stem_mix(tmp_path, 3200.0, voices).stem_levels
    low = _two_stem_mix(tmp_path, 660.0, voices).stem_levels
    # the same tone through a violin's and a flute's channel: 2 dB less at 3.2 kHz on the
    # violin (data/stem-tone.toml), nothing an octave and more below (0.5 dB: the peak's skirt)
    cut = (harsh[0].mix_lufs - harsh[1].mix_lufs) - (low[0].mix_lufs - low[1].mix_lufs)
    assert cut == pytest.approx(-2.0, abs=0.4)
    assert abs(low[0].mix_lufs - low[1].mix_lufs) < 0.5
    assert list(harsh[0].eq) == [{"type": "peak", "hz": 3200.0, "gain_db": -2.0, "q": 0.9}]
    assert list(harsh[1].eq) == [] and harsh[0].compressor is None


def _reference_reduction(block: np.ndarray, comp) -> np.ndarray:
    """The compressor's gain reduction computed sample by sample, the plain way."""
    from scipy.signal import lfilter, sosfilt

    s = comp.settings
    weighted = sosfilt(comp.k_sos, block.astype(np.float64), axis=1)
    power = lfilter(*comp.detector, (weighted ** 2).sum(axis=0))
    wanted = np.clip((-0.691 + 10 * np.log10(power + 1e-20) - comp.threshold_lufs)
                     * (1 - 1 / s.ratio), 0, s.max_reduction_db)
    held, last = np.empty_like(wanted), 0.0
    for i, w in enumerate(wanted):
        last = max(w, last - comp.release_per_frame)
        held[i] = last
    return lfilter(*comp.attack, held)


def test_compressor_matches_a_plain_reference_across_blocks():
    from pipeline.mix.stem_tone import Compressor, load_stem_tone

    rng = np.random.default_rng(7)
    t = np.arange(SR) / SR
    bursts = np.repeat(rng.uniform(0.002, 0.3, 20), SR // 20)  # loud and quiet 50 ms notes
    x = (bursts * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    signal = np.stack([x, 0.8 * x])
    make = lambda: Compressor(load_stem_tone().compressor, threshold_lufs=-30.0,  # noqa: E731
                              sample_rate=SR)
    comp = make()
    blocks = [comp.reduction_db(signal[:, a:b]) for a, b in ((0, 1000), (1000, 17000),
                                                             (17000, SR))]
    expected = _reference_reduction(signal, make())
    np.testing.assert_allclose(np.concatenate(blocks), expected, atol=1e-6)
    assert 0.5 < expected.max() <= load_stem_tone().compressor.max_reduction_db


def test_rhythm_section_is_compressed_lightly_and_its_dynamics_survive(tmp_path):
    if not FLUIDR3.exists():
        pytest.skip(f"{FLUIDR3} is not installed")
    # a walking bass and a trumpet, each eight bars pp then eight bars ff, in a big band
    def walk(name, low):
        notes = [Note(i * TPQ, (i + 1) * TPQ - 60, low + (0, 4, 7, 5)[i % 4], 33 if i < 32 else 112)
                 for i in range(64)]
        return Track(name, name, tuple(notes))
    performance = Performance("pp ff", "", (walk("Bass", 36), walk("Trumpet", 60)))
    voices = assign(performance, soundfont=FLUIDR3, sample_rate=SR)
    assert [v.instrument for v in voices] == ["Acoustic Bass", "Trumpet"]
    stems = render(performance, voices, stems_dir=tmp_path / "stems", sample_rate=SR)
    balance = calibration_db(performance, voices, sample_rate=SR)
    band = load_template("jazz-band")
    result = mix(stems, voices, band, calibration_db=balance, mix_stems_dir=tmp_path / "ms")
    bass, trumpet = result.stem_levels
    assert trumpet.compressor is None and bass.compressor["ratio"] <= 2.0
    # light: a few dB at most, and only where it plays loud
    assert 0.5 < bass.compressor["max_reduction_db"] <= 4.0
    assert bass.compressor["compressed_pct"] < 60
    mix(stems, voices, replace(band, compress=()), calibration_db=balance,
        mix_stems_dir=tmp_path / "plain")

    def pp_to_ff(folder):
        audio, _ = read(tmp_path / folder / stems.stems[0].path.name)
        half = int(16.0 * SR)  # 32 crotchets at 120 bpm
        return integrated_lufs(audio[:, half:2 * half], SR) - integrated_lufs(audio[:, :half], SR)

    compressed, plain = pp_to_ff("ms"), pp_to_ff("plain")
    assert compressed > 10.0, compressed            # pp is still far quieter than ff
    assert 0.3 < plain - compressed < 4.0, (plain, compressed)  # ff only a little steadier


@pytest.mark.parametrize("soundfont", [FLUIDR3, MUSESCORE], ids=["FluidR3", "MuseScore"])
def test_calibration_puts_piano_harp_and_guitar_beside_sustained_instruments(soundfont, tmp_path):
    if not soundfont.exists():
        pytest.skip(f"{soundfont} is not installed")
    decaying = [("Piano", 60), ("Harp", 60), ("Acoustic Guitar", 52)]
    sustained = [("Violin", 67), ("Violoncello", 43), ("Flute", 72), ("Clarinet", 60)]
    performance = Performance("mf mixed", "", tuple(_scale_track(n, low)
                                                    for n, low in decaying + sustained))
    voices = assign(performance, soundfont=soundfont, sample_rate=SR)
    stems = render(performance, voices, stems_dir=tmp_path / "stems", sample_rate=SR)
    calibrated = np.array(_stem_lufs(stems)) + np.array(
        calibration_db(performance, voices, sample_rate=SR))
    # a held reference note left the decaying instruments about 3 LU too loud here (the
    # reference had decayed; these crotchets have not); repeated crotchets measure them as played
    gap = calibrated[:3].mean() - calibrated[3:].mean()
    assert abs(gap) <= 1.0 and np.ptp(calibrated) <= 3.0, (gap, calibrated)


def test_mixing_while_rendering_is_mixing_the_files(tmp_path):
    # the recipe mixes the stems as the synths make them, each player's block played on its
    # synth's thread; that must be the very mix of the stems as written: here three synths
    # ending at different times (a part that stops early, one resting through whole blocks,
    # one with a long last note), a compressed player, mix stems
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.render.stems import StemFeed, max_stem_frames, stem_files

    if not FLUIDR3.exists():
        pytest.skip(f"{FLUIDR3} is not installed")
    block_s = BLOCK_FRAMES / SR
    beats = int(4 * block_s / 0.5)  # four blocks of crotchets at 120
    early = _scale_track("Violin", 67, beats=beats // 3)
    resting = Track("Bass", "Bass", tuple(n for n in _scale_track("Bass", 40, 120, beats).notes
                                          if not block_s < n.on / TPQ * 0.5 < 2.5 * block_s))
    long = Track("Piano", "Piano", _scale_track("Piano", 55, beats=beats).notes
                 + (Note(beats * TPQ, (beats + 8) * TPQ, 48, 90),))
    performance = Performance("staggered", "", (early, resting, long))
    voices = assign(performance, soundfont=FLUIDR3, sample_rate=SR)
    template = load_template("duet")
    streamed_dir = tmp_path / "streamed"
    feed = StemFeed(stem_files(performance, streamed_dir / "stems"), SR,
                    max_stem_frames(performance, SR))
    with ThreadPoolExecutor(1) as side:
        rendering = side.submit(render, performance, voices, stems_dir=streamed_dir / "stems",
                                sample_rate=SR, workers=3, feed=feed)
        streamed = mix(feed, voices, template, mix_stems_dir=streamed_dir / "mix-stems")
        stems = rendering.result()
    # the compressed player's share of frames compressed counts the stems' frames only
    compressed = [level.compressor for level in streamed.stem_levels if level.compressor]
    assert compressed and all(c["compressed_pct"] > 0 for c in compressed)
    assert stems.frames == feed.frames > 4 * BLOCK_FRAMES
    from_files = mix(stems, voices, template, mix_stems_dir=tmp_path / "mix-stems")
    np.testing.assert_array_equal(streamed.audio, from_files.audio)
    assert streamed.stem_levels == from_files.stem_levels and streamed.loudness_lufs == from_files.loudness_lufs
    for s in stems.stems:
        np.testing.assert_array_equal(read(streamed_dir / "mix-stems" / s.path.name)[0],
                                      read(tmp_path / "mix-stems" / s.path.name)[0])


def test_a_held_block_is_filled_again_only_once_prepared():
    """A synth's block the feed holds (not yet known to lie in the stems) is its own again once
    prepared, zeroed; the block just handed over, kept by the synth, is never given back."""
    import contextlib
    import threading

    from pipeline.dsp.audio import BLOCK_FRAMES
    from pipeline.model import Stem
    from pipeline.render.stems import StemFeed, stem_length

    feed = StemFeed((Stem(0, "a", None),), SR, 10 * BLOCK_FRAMES)
    feed.start([(0,)])
    prepared = []

    def consume() -> None:
        with contextlib.suppress(RuntimeError):  # the test's end
            list(feed.blocks(lambda i, audio, width: prepared.append(audio.copy())))

    consumer = threading.Thread(target=consume)
    consumer.start()
    margin = stem_length(0, SR)
    assert margin < BLOCK_FRAMES  # a block ending in a rest waits for a later sound
    first = np.full((2, BLOCK_FRAMES), 0.5, dtype=np.float32)
    assert feed.put(0, first, BLOCK_FRAMES, last=100) is True  # held: the feed keeps it
    assert feed.spare(0) is None  # not prepared yet: not the synth's
    second = np.full((2, BLOCK_FRAMES), 0.25, dtype=np.float32)
    assert feed.put(0, second, BLOCK_FRAMES, last=2 * BLOCK_FRAMES - 1) is False  # both prepared
    again = feed.spare(0)
    assert again is first and not again.any()  # the held one, zeroed
    assert feed.spare(0) is None  # the second stays the synth's, never handed back
    assert [float(p[0, 0]) for p in prepared] == [0.5, 0.25]  # prepared before it was zeroed
    feed.fail(RuntimeError("the test's end"))
    consumer.join(5)
    assert not consumer.is_alive()
