"""Rehearsal balances: one player's part brought forward and centred, the others set back, for
a singer or player learning it; optionally a bar of clicks before the music.

They are made from the mix and the player's mix stem (its post-fader contribution, reverb
included: the mix stems sum to the mix), so nothing is synthesised or mixed again:
``others × (mix − part) + own × centred(part)``, the gains from :class:`Rehearsal`. Centring
folds the part's left and right into both channels at the loudness it had (its room included),
so a part seated hard left is heard in the middle at the level it was heard at.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dsp.audio import db_to_gain

#: the click: a short decaying sine, higher on the downbeat (as a metronome's bell)
CLICK_HZ = 1500.0
DOWNBEAT_CLICK_HZ = 2500.0
CLICK_DECAY_MS = 8.0
CLICK_LENGTH_MS = 40.0
#: the clicks' peak, under the music's own peak
CLICK_BELOW_PEAK_DB = 6.0
#: silence before the first click
COUNT_IN_LEAD_S = 0.1


@dataclass(frozen=True)
class Rehearsal:
    """What a rehearsal track does: its own part's gain and the others' (dB, relative to the
    mix), and whether a bar of clicks at the opening tempo comes first."""

    part_gain_db: float = 6.0
    others_gain_db: float = -6.0
    count_in: bool = False


def rehearsal_balance(mix: np.ndarray, part: np.ndarray, rehearsal: Rehearsal) -> np.ndarray:
    """The rehearsal balance of one part, made in ``part``'s own array (it is used up).

    Parameters
    ----------
    mix : (2, frames) float32, the whole mix
    part : (2, frames) float32, the part's mix stem (it sums with the others to ``mix``)
    """
    own = np.float32(db_to_gain(rehearsal.part_gain_db))
    others = np.float32(db_to_gain(rehearsal.others_gain_db))
    power = float(np.einsum("ij,ij->", part, part, dtype=np.float64))
    mid = part.sum(axis=0, dtype=np.float32)
    mid *= np.float32(0.5)
    mid_power = 2.0 * float(np.dot(mid, mid))
    # the centred part keeps the power (the loudness) it had in the mix
    keep = np.sqrt(power / mid_power) if mid_power > 0 else 0.0
    part *= -others
    part += others * mix
    mid *= np.float32(own * keep)
    part += mid[None, :]
    return part


def count_in(time_signature: tuple[int, int], quarter_bpm: float, sample_rate: int, *,
             music_peak: float) -> tuple[np.ndarray, int]:
    """A bar of clicks at the opening tempo, downbeat first, and how many.

    The beat is the time signature's unit, except in compound time (6/8, 9/8, 12/8…), where
    players count the dotted beats. Returns (2, frames) float32 ending where the bar ends,
    after :data:`COUNT_IN_LEAD_S` of silence, the clicks :data:`CLICK_BELOW_PEAK_DB` under
    ``music_peak``.
    """
    peak = music_peak * db_to_gain(-CLICK_BELOW_PEAK_DB)
    beats, unit = time_signature
    beat_quarters = 4.0 / unit
    if unit >= 8 and beats % 3 == 0 and beats > 3:  # compound: count the dotted beats
        beats, beat_quarters = beats // 3, beat_quarters * 3
    beat_s = beat_quarters * 60.0 / quarter_bpm
    lead = int(round(COUNT_IN_LEAD_S * sample_rate))
    frames = lead + int(round(beats * beat_s * sample_rate))
    out = np.zeros((2, frames), dtype=np.float32)
    t = np.arange(int(CLICK_LENGTH_MS / 1000 * sample_rate)) / sample_rate
    decay = np.exp(-t / (CLICK_DECAY_MS / 1000))
    for k in range(beats):
        hz = DOWNBEAT_CLICK_HZ if k == 0 else CLICK_HZ
        click = (peak * decay * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        at = lead + int(round(k * beat_s * sample_rate))
        n = min(click.size, frames - at)
        out[:, at:at + n] += click[:n]
    return out, beats


def with_count_in(audio: np.ndarray, clicks: np.ndarray, music_start_s: float,
                  sample_rate: int) -> np.ndarray:
    """``audio`` (whose score time 0 is at ``music_start_s``) after ``clicks`` (which end on
    the first downbeat): the music's start falls where the clicks' bar ends, the two overlap
    where the music's lead-in reaches back into the count."""
    start = int(round(music_start_s * sample_rate))
    shift = max(0, clicks.shape[1] - start)
    out = np.zeros((2, shift + audio.shape[1]), dtype=np.float32)
    out[:, shift:] = audio
    first = shift + start - clicks.shape[1]
    out[:, first:first + clicks.shape[1]] += clicks
    return out
