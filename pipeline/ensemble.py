"""Choosing the ensemble template from the instrumentation."""
from __future__ import annotations

from collections import Counter

from .model import Performance, Voice

BY_PLAYERS = {1: "solo", 2: "duet", 3: "trio", 4: "quartet", 5: "quintet", 6: "sextet"}
BRASS_BAND_WORDS = ("cornet", "tenor horn", "euphonium", "baritone horn", "flugelhorn", "flügelhorn")


def detect_ensemble(performance: Performance, voices: tuple[Voice, ...]) -> str:
    """The template name that fits the instrumentation.

    Voices only → choir; saxes with trumpets and trombones → jazz band; cornets, tenor horns or
    euphoniums → brass band; winds and brass without strings → concert band; strings with winds
    or brass → orchestra; otherwise by the number of players (a piano is one player).
    """
    families = Counter(v.family for v in voices)
    names = " ".join(t.name.lower() for t in performance.tracks)
    players = len(voices)
    if families["voices"] == players and players > 1:
        return "choir"
    has_trumpet = any("trumpet" in t.name.lower() or v.program in (56, 59)
                      for t, v in zip(performance.tracks, voices))
    has_trombone = any("trombone" in t.name.lower() or v.program == 57
                       for t, v in zip(performance.tracks, voices))
    if families["saxes"] >= 2 and has_trumpet and has_trombone:
        return "jazz-band"
    if players > 6 and any(w in names for w in BRASS_BAND_WORDS) and families["strings"] == 0:
        return "brass-band"
    if players > 6:  # strings make an orchestra; winds and brass without them a concert band
        return "orchestra" if families["strings"] else "concert-band"
    return BY_PLAYERS.get(players, "solo")


def instrumentation(performance: Performance) -> str:
    """A short human description, e.g. 'Violin ×2, Viola, Cello'."""
    counts = Counter(t.name.rstrip(" 0123456789IVX").strip() or t.name for t in performance.tracks)
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counts.items())

