"""A mix made to loop: what sounds past the loop's end (the room's tail, release tails) is
folded onto its start, and what sounds before its first downbeat (the lead-in of notes started
early to be heard on the beat) onto its end, as they sound when the loop is played round and
round."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipeline.dsp.loudness import measure
from pipeline.model import Mix


def fold_loop(mix: Mix, *, loop_s: float, origin_s: float) -> Mix:
    """``mix`` folded into one turn of ``loop_s`` seconds starting at ``origin_s`` in it (where
    the loop's first downbeat is), measured again."""
    sr = mix.sample_rate
    frames, origin = int(round(loop_s * sr)), int(round(origin_s * sr))
    audio = mix.audio
    out = np.zeros((audio.shape[0], frames), dtype=np.float32)
    for start in range(origin - frames * -(-origin // frames), audio.shape[1], frames):
        a, b = max(0, start), min(audio.shape[1], start + frames)
        if a < b:
            out[:, a - start:b - start] += audio[:, a:b]
    loud = measure(out, sr)
    return replace(mix, audio=out, loudness_lufs=loud.integrated_lufs(),
                   short_term_lufs=loud.short_term_lufs())
