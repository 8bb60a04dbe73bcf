"""Rendering a score again skips parsing and performing: the performance comes from a cache
keyed by the file's content and the playing options."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.speed import score_source
from pipeline.speed.score_source import ScoreSource
from pipeline.speed import performance_cache as scorecache
from pipeline.score.load import load
from pipeline.score.perform import perform

DATA = Path(__file__).resolve().parent / "data"
SCORE = DATA / "transposition-changes.musicxml"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCORE2AUDIO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_score_performed_before_is_not_parsed_again(cache, tmp_path, monkeypatch):
    first = ScoreSource(SCORE)
    first.prepare(swing=None)
    made = first.performance(swing=None)
    assert first.loaded is not None  # nothing cached yet: parsed and performed
    assert made == perform(load(SCORE))

    # the same content under another name and time: found, and nothing is parsed
    moved = tmp_path / "renamed.musicxml"
    shutil.copy(SCORE, moved)

    def no_parsing(path):
        raise AssertionError(f"{path} was parsed again")

    monkeypatch.setattr(score_source, "load", no_parsing)
    again = ScoreSource(moved)
    again.prepare(swing=None)
    assert again.performance(swing=None) == made
    assert again.loaded is None


def test_other_content_or_options_are_other_performances(cache, tmp_path):
    edited = tmp_path / "edited.musicxml"
    edited.write_bytes(SCORE.read_bytes().replace(b"<step>D</step>", b"<step>E</step>", 1))
    keys = {scorecache.key(SCORE, swing=None, fermata_hold=None),
            scorecache.key(SCORE, swing=2.0, fermata_hold=None),
            scorecache.key(SCORE, swing=None, fermata_hold=1.0),
            scorecache.key(edited, swing=None, fermata_hold=None)}
    assert len(keys) == 4
    played = ScoreSource(edited).performance(swing=None)
    assert played != ScoreSource(SCORE).performance(swing=None)  # the edit is heard


def test_a_damaged_entry_is_made_again(cache):
    made = ScoreSource(SCORE).performance(swing=None)
    for entry in (cache / "performances").glob("*.pickle"):
        entry.write_bytes(b"not a pickle")
    score = ScoreSource(SCORE)
    score.prepare(swing=None)
    assert score.loaded is not None  # parsed again
    assert score.performance(swing=None) == made


def test_a_read_only_cache_still_serves_its_performances(cache, monkeypatch):
    made = ScoreSource(SCORE).performance(swing=None)

    def read_only(*_args, **_kwargs):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(scorecache.os, "utime", read_only)
    score = ScoreSource(SCORE)
    score.prepare(swing=None)
    assert score.loaded is None  # served from the cache
    assert score.performance(swing=None) == made


# ---- the command's head start: a helper process parses and performs while it loads ----

def test_while_waiting_the_render_can_tell_when_the_helper_is_through(cache):
    # the warm-up works only while the helper does (a third busy thread slows the parse)
    import time

    from pipeline.speed import prefetch

    seen = []

    def meanwhile(busy):
        seen.append(busy())
        deadline = time.monotonic() + 60
        while busy() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(busy())

    helper = prefetch.start([str(SCORE)], ensemble=None, swing=None)
    try:
        assert helper.wait(SCORE, None, meanwhile)
    finally:
        helper.stop()
    assert seen == [True, False]  # at work when the wait began, through before it ended


def test_the_helper_leaves_the_performance_the_render_would_make(cache, tmp_path, monkeypatch):
    from pipeline.speed import prefetch

    missing = tmp_path / "missing.musicxml"
    helper = prefetch.start([str(SCORE), str(missing)], ensemble=None, swing=None)
    try:
        assert helper.wait(SCORE, None)
        assert not helper.wait(SCORE, 2.0)      # it played it straight, not swung
        assert not helper.wait(missing, None)   # the render reports that one itself
        assert not helper.wait(tmp_path / "never-asked.musicxml", None)
    finally:
        helper.stop()

    def no_parsing(path):
        raise AssertionError(f"{path} was parsed in the render's own process")

    monkeypatch.setattr(score_source, "load", no_parsing)
    score = ScoreSource(SCORE)
    score.prepare(swing=None)
    assert score.performance(swing=None) == perform(load(SCORE))


def test_the_helper_plays_the_swing_the_render_will(cache, tmp_path):
    from pipeline.speed import prefetch

    side = tmp_path / "tune.musicxml"
    shutil.copy(SCORE, side)
    (tmp_path / "tune.toml").write_text('ensemble = "jazz-band"\n', encoding="utf-8")
    helper = prefetch.start([str(side)], ensemble=None, swing=None)
    try:  # the sidecar's jazz band swings: so does the helper
        assert helper.wait(side, 2.0)
    finally:
        helper.stop()
    assert scorecache.read(scorecache.key(side, swing=2.0, fermata_hold=None)) is not None


def test_without_its_helper_the_render_parses_the_score_itself(cache, monkeypatch):
    from pipeline.speed import prefetch

    monkeypatch.setattr(prefetch.subprocess, "Popen", lambda *a, **k: (_ for _ in ()).throw(
        OSError("no processes left")))
    helper = prefetch.start([str(SCORE)], ensemble=None, swing=None)
    assert helper is None  # no helper: nothing to wait for
    score = ScoreSource(SCORE, helper)
    score.prepare(swing=None)
    assert score.loaded is not None and score.performance(swing=None) == perform(load(SCORE))


def test_a_helper_that_cannot_store_its_performance_leaves_the_render_to_it(tmp_path, monkeypatch):
    from pipeline.speed import prefetch

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("SCORE2AUDIO_CACHE", str(blocker / "cache"))
    helper = prefetch.start([str(SCORE)], ensemble=None, swing=None)
    try:  # the render is not sent to read a cache that has nothing for it
        assert not helper.wait(SCORE, None)
    finally:
        helper.stop()


def test_a_helper_that_died_leaves_every_score_to_the_render(cache, tmp_path):
    """An album's helper killed midway: each piece asked for afterwards is the render's own
    (no error reading from a helper that has gone)."""
    from pipeline.speed import prefetch

    other = tmp_path / "other.musicxml"
    shutil.copy(SCORE, other)
    helper = prefetch.start([str(SCORE), str(other)], ensemble=None, swing=None)
    try:
        helper.process.kill()
        assert not helper.wait(SCORE, None)
        assert not helper.wait(other, None)
    finally:
        helper.stop()
