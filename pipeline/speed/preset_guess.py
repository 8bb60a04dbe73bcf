"""A guess at a score's presets before it is parsed, so that their samples are decoded while
music21 works: a speed trick beside the assign stage (a wrong guess costs only that time).
"""
from __future__ import annotations

from pathlib import Path

from pipeline.model import Track, Voice
from pipeline.dsp.fluidsynth import Synth
from pipeline.score import techniques
from pipeline.score.musicxml import part_list_preview
from pipeline.settings.sidecar import PartSettings
from pipeline.settings.soundfonts import fallback_soundfont
from pipeline.voices.assign import choose_voice
from pipeline.voices.assign import log as assign_log


def likely_presets(score_path: Path, soundfont: Path) -> list[tuple[Voice, int]]:
    """A guess, from a MusicXML score's part list and words alone (no music21), at the presets
    its render will select: each part's voice as :func:`~pipeline.voices.assign.assign` would
    choose it without a sidecar, and the programs its technique words ask for (pizz., mutes).
    For decoding them while the score is still being parsed (a wrong guess costs only that
    time); [] for a MIDI file or one that cannot be read."""
    if score_path.suffix.lower() not in (".musicxml", ".xml", ".mxl"):
        return []
    parts, words = part_list_preview(score_path)
    if not parts:
        return []
    asked = {s for text in words for s in techniques.switches(text)}
    technique_programs = (("pizz", techniques.BOWED_STRINGS, techniques.PIZZICATO_STRINGS),
                          ("arco", techniques.PLUCKED_DOUBLE_BASS, techniques.CONTRABASS),
                          ("mute", techniques.TRUMPETS, techniques.MUTED_TRUMPET))
    wanted, fallback = [], fallback_soundfont(soundfont)
    # a guess: the assign stage's warnings about its fallbacks are not news
    was_disabled, assign_log.disabled = assign_log.disabled, True
    try:
        with Synth(sample_rate=48000, channels=1) as probe:
            for part in parts:
                track = Track(part["name"], (part["instruments"] or [""])[0], (),
                              program=part["program"], bank=part["bank"],
                              is_percussion=part["unpitched"])
                voice = choose_voice(track, PartSettings(), soundfont, fallback, probe, choir=False)
                wanted.append((voice, voice.program))
                wanted += [(voice, program) for switch, before, program in technique_programs
                           if switch in asked and voice.program in before
                           and not voice.is_percussion]
    finally:
        assign_log.disabled = was_disabled
    return wanted
