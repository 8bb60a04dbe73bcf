"""Choosing the ensemble template from the instrumentation."""
from __future__ import annotations

from collections import Counter

from pipeline.model import Performance, Voice

BY_PLAYERS = {1: "solo", 2: "duet", 3: "trio", 4: "quartet", 5: "quintet", 6: "sextet"}
BRASS_BAND_WORDS = ("cornet", "tenor horn", "euphonium", "baritone horn", "flugelhorn", "flügelhorn")


def detect_ensemble(performance: Performance, voices: tuple[Voice, ...]) -> str:
    """The template name that fits the instrumentation.

    Voices only → choir; saxes with trumpets, trombones and a rhythm section (and no woodwind
    section) → jazz band; cornets, tenor horns or euphoniums with only brass and percussion →
    brass band; strings (beyond a lone double bass) with winds or brass → orchestra; winds and
    brass without a string section → concert band; otherwise by the number of players (a piano
    is one player), a larger group going by whether it has strings.
    """
    families = Counter(v.family for v in voices)
    names = [t.name.lower() for t in performance.tracks]
    text = " ".join(names)
    players = len(voices)
    if families["voices"] == players and players > 1:
        return "choir"
    has_trumpet = any("trumpet" in n or v.program in (56, 59) for n, v in zip(names, voices))
    has_trombone = any("trombone" in n or v.program == 57 for n, v in zip(names, voices))
    rhythm = sum(1 for v in voices
                 if v.family in ("keyboards", "plucked", "percussion") or v.is_percussion
                 or (v.family == "strings" and _is_double_bass(v)))
    woodwinds = families["woodwinds"]
    # a string section: violins, violas, cellos (a concert band's one string bass is not one)
    section = sum(1 for v in voices
                  if v.family == "strings" and not _is_double_bass(v))
    winds_brass = woodwinds + families["saxes"] + families["brass"]
    if families["saxes"] >= 2 and has_trumpet and has_trombone and rhythm and woodwinds < 2 \
            and section == 0:
        return "jazz-band"
    if players > 6 and any(w in text for w in BRASS_BAND_WORDS) and \
            families["brass"] + families["percussion"] == players:
        return "brass-band"
    if players > 6:  # a string section, or strings alone: an orchestra; else a band
        return "orchestra" if section or (families["strings"] and not winds_brass) \
            else "concert-band"
    return BY_PLAYERS.get(players, "solo")


def _is_double_bass(voice: Voice) -> bool:
    return voice.program in (32, 33, 43) or \
        voice.instrument in ("Contrabass", "Acoustic Bass", "Electric Bass")


def instrumentation(performance: Performance) -> str:
    """A short human description, e.g. 'Violin ×2, Viola, Cello'."""
    counts = Counter(t.name.rstrip(" 0123456789IVX").strip() or t.name for t in performance.tracks)
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counts.items())

