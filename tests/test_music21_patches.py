"""music21's MusicXML reader is fixed only around our own parse (pipeline.score.music21_patches):
a program that imports pipeline and parses its own scores gets music21 as it was; a music21
without a method the fixes replace is refused in one line; a damaged <time> is refused from the
raw XML before music21 reads it."""
from __future__ import annotations

import threading

import music21
import pytest
from music21.musicxml import xmlToM21

from pipeline.errors import ScoreError
from pipeline.score import music21_patches
from pipeline.score.load import load
from pipeline.score.music21_patches import PATCHES, patched_reader

GRACE = ('<note><grace/><pitch><step>B</step><octave>4</octave></pitch><type>eighth</type></note>'
         '<note><pitch><step>C</step><octave>5</octave></pitch><duration>4</duration>'
         '<type>whole</type></note>')
TIME = "<time><beats>4</beats><beat-type>4</beat-type></time>"


def score(tmp_path, body: str = GRACE, *, time: str = TIME, name: str = "grace.musicxml",
          encoding: str = "utf-8"):
    xml = (f'<?xml version="1.0" encoding="{encoding.upper()}"?>\n<score-partwise version="3.1">'
           '<part-list><score-part id="P1"><part-name>Flute</part-name></score-part></part-list>'
           f'<part id="P1"><measure number="1"><attributes><divisions>1</divisions>{time}'
           f'</attributes>{body}</measure></part></score-partwise>\n')
    path = tmp_path / name
    path.write_bytes(xml.encode(encoding))
    return path


def originals() -> dict[tuple[str, str], object]:
    return {(c, n): getattr(xmlToM21, c).__dict__.get(n) for c, n, _ in PATCHES}


def grace_slashed(path) -> bool:
    parsed = music21.converter.parse(str(path), forceSource=True)
    (grace,) = [n for n in parsed.recurse().notes if n.duration.isGrace]
    return grace.duration.slash


def test_load_leaves_music21_as_it_was(tmp_path):
    before = originals()
    assert all(before.values())
    load(score(tmp_path))
    assert originals() == before
    assert grace_slashed(score(tmp_path)), "a host's parse gets music21's own reading"


def test_inside_the_context_the_fixes_hold(tmp_path):
    before = originals()
    with patched_reader():
        assert originals() != before
        assert not grace_slashed(score(tmp_path)), "<grace/> is an appoggiatura"
        assert getattr(xmlToM21.MeasureParser, "xmlGraceToGrace").__doc__.startswith(
            "music21 reads ``<grace/>``")
    assert originals() == before


def test_nested_and_failing_uses_restore_when_the_last_leaves(tmp_path):
    before = originals()
    with pytest.raises(RuntimeError):
        with patched_reader():
            with patched_reader():
                pass
            assert originals() != before, "the outer use still holds the fixes"
            raise RuntimeError("a parse failed")
    assert originals() == before


def test_another_thread_meanwhile_gets_music21s_own_reading(tmp_path):
    path = score(tmp_path)
    seen = []
    with patched_reader():
        worker = threading.Thread(target=lambda: seen.append(grace_slashed(path)))
        worker.start()
        worker.join()
        assert not grace_slashed(path)
    assert seen == [True]


@pytest.mark.parametrize("replacement", ["delete", 3], ids=["missing", "not-a-function"])
def test_a_music21_without_a_patched_method_is_refused_in_one_line(tmp_path, monkeypatch,
                                                                   replacement):
    if replacement == "delete":
        monkeypatch.delattr(xmlToM21.PartParser, "xmlMeasureToMeasure")
    else:
        monkeypatch.setattr(xmlToM21.PartParser, "xmlMeasureToMeasure", replacement)
    before = originals()
    with pytest.raises(ScoreError) as caught:
        load(score(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    assert f"music21 {music21.__version__}" in message
    assert "PartParser.xmlMeasureToMeasure" in message
    assert music21_patches.SUPPORTED in message
    assert originals() == before, "nothing replaced"
    assert music21_patches._open == 0


@pytest.mark.parametrize("time, words", [
    ("<time><beats>&#49;00000</beats><beat-type>4</beat-type></time>", "'100000' beats"),
    ("<time><beats><![CDATA[3]]></beats><beat-type> 3 </beat-type></time>", "beat type '3'"),
    ("<time><beats>3+2</beats><beat-type>8</beat-type><beats/><beat-type>8</beat-type></time>",
     "'' beats"),
], ids=["character-reference", "cdata", "empty-second-beats"])
def test_a_damaged_time_is_refused_before_music21_reads_it(tmp_path, monkeypatch, time, words):
    def never(*_args, **_kwargs):
        raise AssertionError("music21 must not read it")

    monkeypatch.setattr(music21.converter, "parse", never)
    path = score(tmp_path, time=time)
    with pytest.raises(ScoreError, match="cannot be read as a score") as caught:
        load(path)
    assert words in str(caught.value)


def test_a_damaged_time_in_utf16_is_refused(tmp_path):
    path = score(tmp_path, time="<time><beats>1e308</beats><beat-type>4</beat-type></time>",
                 encoding="utf-16")
    with pytest.raises(ScoreError, match="'1e308' beats cannot be played"):
        load(path)


def test_a_time_in_a_part_music21_skips_or_in_words_is_not_refused(tmp_path):
    words = ('<direction><direction-type><words><![CDATA[<beats>0</beats>]]></words>'
             '</direction-type></direction>')
    path = score(tmp_path, words + GRACE)
    text = path.read_text().replace(
        "</score-partwise>", '<part id="P9"><measure number="1"><attributes><time><beats>x'
        '</beats><beat-type>4</beat-type></time></attributes></measure></part></score-partwise>')
    path.write_text(text)
    assert load(path).data.parts


def test_what_a_fix_leaves_out_is_said_once_per_parse(tmp_path, caplog):
    """Two unreadable noteheads in one file make one warning; the next parse says it again."""
    import logging

    half = ('<note><pitch><step>C</step><octave>5</octave></pitch><duration>2</duration>'
            '<type>half</type><notehead>named</notehead></note>')
    path = score(tmp_path, half * 2)
    with caplog.at_level(logging.WARNING):
        load(path)
        load(path)
    said = [r.getMessage() for r in caplog.records if r.name == "pipeline.score.load"]
    assert said == [f"{path}: a notehead music21 cannot read ('named') is drawn as a normal "
                    "one"] * 2
