"""Selecting soundfont presets on a synth's channels, and keeping presets selected so that
FluidSynth keeps their samples decoded: used by the render for the presets parts change to, and
by the orchestrator's speed-ups for a guess at a score's presets while it is parsed.
"""
from __future__ import annotations

import logging
import threading

from pipeline.errors import SoundfontError
from pipeline.model import OWN_PROGRAM, Voice
from pipeline.dsp.fluidsynth import DRUM_BANK, Synth

log = logging.getLogger(__name__)


class PresetHolder:
    """A silent synth that selects presets on a thread of its own and keeps them until it is
    closed. FluidSynth shares a preset's decoded samples between the synths of a process while
    one of them has it selected, so the render's synths find them decoded (a lock per preset
    keeps two synths from decoding one at once). Used for the presets the parts change to
    (pizz., mutes: :func:`pipeline.render.stems.preset_changes`), during the render, and for a
    guess at all of a score's presets while it is still being parsed."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.held: dict[tuple, tuple[Voice, int]] = {}
        self.synth: Synth | None = None
        self.threads: list[threading.Thread] = []

    CHANNELS = 64  # presets held at most (a guess beyond that is let go)

    def hold(self, wanted: list[tuple[Voice, int]]) -> None:
        """Select each ``(voice, program)`` not held yet, in the background."""
        new = {}
        for voice, program in wanted:
            key = preset_key(voice, program)
            if key not in self.held and key not in new:
                new[key] = (voice, program)
        new = dict(list(new.items())[:self.CHANNELS - len(self.held)])
        if not new:
            return
        first = len(self.held)
        self.held.update(new)
        if self.synth is None:
            self.synth = Synth(sample_rate=self.sample_rate, channels=self.CHANNELS)
        jobs = list(enumerate(new.values(), start=first))
        thread = threading.Thread(target=self._select, args=(jobs,), name="score2audio-presets",
                                  daemon=True)
        self.threads.append(thread)
        thread.start()

    def _select(self, jobs) -> None:
        try:
            for channel, (voice, program) in jobs:
                program_change(self.synth, channel, voice, program, quiet=True)
        except Exception as exc:  # the render's own selection reports what is wrong
            log.debug("preloading presets: %s", exc)

    def decoded(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the presets asked for so far; whether they are
        all selected."""
        for thread in self.threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in self.threads)

    def __enter__(self) -> "PresetHolder":
        return self

    def __exit__(self, *exc) -> None:
        for thread in self.threads:
            thread.join()
        if self.synth is not None:
            self.synth.close()
            self.synth = None


def preset_key(voice: Voice, program: int) -> tuple:
    """Which preset ``program`` is in ``voice``'s soundfont and bank (drum kit or not)."""
    return voice.soundfont, voice.bank, voice.is_percussion, program


def program_change(synth: Synth, channel: int, voice: Voice, program: int, *,
                    quiet: bool = False) -> None:
    """Switch a channel to ``program`` (:data:`OWN_PROGRAM`: the voice's own) in the voice's
    soundfont and bank, else in its bank 0 (a variation bank, such as MuseScore General's
    expressive bank 17, lacks most programs); if neither has it, the channel plays on."""
    if program == OWN_PROGRAM:
        program = voice.program
    bank = DRUM_BANK if voice.is_percussion else voice.bank
    for b in (bank, 0) if bank not in (0, DRUM_BANK) else (bank,):
        try:
            synth.select(channel, voice.soundfont, b, program, drum=voice.is_percussion)
            return
        except SoundfontError:
            continue
    if not quiet:
        log.warning("program change to %d: not in %s; the part plays on in its current voice",
                    program, voice.soundfont.name)
