"""More tracks than a synth has MIDI channels: several synths, still one stem per track."""
from __future__ import annotations

import mido
import pytest

from conftest import fundamental_hz, read

TRACKS = 20  # > 16 channels of one synth


def _many_track_midi(path):
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    mid.tracks.append(conductor)
    for i in range(TRACKS):
        pitch = 48 + 2 * i  # every track its own note, C3 upwards in whole tones
        t = mido.MidiTrack([
            mido.MetaMessage("track_name", name=f"Flute {i + 1}", time=0),
            mido.Message("program_change", channel=i % 9, program=73, time=0),
            mido.Message("note_on", channel=i % 9, note=pitch, velocity=90, time=0),
            mido.Message("note_off", channel=i % 9, note=pitch, velocity=0, time=960),
        ])
        mid.tracks.append(t)
    mid.save(str(path))
    return path


def test_twenty_tracks_give_twenty_aligned_stems(tmp_path, render_once):
    result = render_once(_many_track_midi(tmp_path / "twenty.mid"))
    parts = result.report.parts
    assert len(parts) == TRACKS
    stems = [read(result.folder / p.stem) for p in parts]
    assert len({a.shape[1] for a, _ in stems}) == 1
    for i, (audio, sr) in enumerate(stems):
        expected = 440.0 * 2 ** ((48 + 2 * i - 69) / 12)
        # each stem carries its own track's note, not a neighbour's (200 cents away): ±50 cents,
        # because the GM flute samples themselves range from −6 to +16 cents over this compass
        assert fundamental_hz(audio[:, int(0.2 * sr): int(0.9 * sr)], sr) == pytest.approx(
            expected, rel=2 ** (50 / 1200) - 1)
