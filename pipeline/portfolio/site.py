"""The portfolio's static site: one ``index.html`` with the pieces grouped by ensemble category.

Everything it needs is in the site folder and linked relatively (the waveforms are SVG files we
draw from the master's peaks, the styles are inline), so it works opened from disk, served by
``python -m http.server`` or copied to any web host, with no network and no CDN.
"""
from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import numpy as np

from pipeline import __version__
from pipeline.files import atomic_path

#: The order of the categories on the page; any other category follows, alphabetically.
CATEGORY_ORDER = ("solo", "duet", "trio", "quartet", "quintet", "sextet", "jazz-band",
                  "brass-band", "concert-band", "orchestra", "choir")
WAVEFORM_COLUMNS = 400
WAVEFORM_HEIGHT = 48
MIME = {"mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac"}

STYLE = """
:root { color-scheme: light dark; --fg: #1d1d1f; --muted: #5f6368; --bg: #fafafa;
  --card: #fff; --line: #ddd; --accent: #2b5d9b; }
@media (prefers-color-scheme: dark) { :root { --fg: #eee; --muted: #aaa; --bg: #121212;
  --card: #1e1e1e; --line: #333; --accent: #8ab4f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header, main, footer { max-width: 72rem; margin: 0 auto; padding: 0 1rem; }
h1 { margin: 1.2rem 0 .2rem; font-size: 1.8rem; }
.counts { margin: 0 0 .6rem; color: var(--muted); }
.counts a { color: inherit; text-decoration: none; border-bottom: 1px dotted; white-space: nowrap; }
h2 { margin: 2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 2px solid var(--line); }
h2 small { color: var(--muted); font-weight: normal; font-size: 1rem; }
.pieces { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 21rem), 1fr)); }
article { background: var(--card); border: 1px solid var(--line); border-radius: .6rem;
  padding: .8rem 1rem; display: flex; flex-direction: column; gap: .35rem; min-width: 0; }
h3 { margin: 0; font-size: 1.1rem; }
.by, .meta, .rights { margin: 0; color: var(--muted); font-size: .92rem; }
.rights { font-size: .8rem; }
.wave { width: 100%; height: 3rem; }
audio { width: 100%; }
.downloads { margin: 0; font-size: .9rem; display: flex; flex-wrap: wrap; gap: .3rem .8rem; }
.downloads a { color: var(--accent); }
footer { margin: 2rem auto; color: var(--muted); font-size: .85rem; }
"""


def category_name(category: str) -> str:
    """'jazz-band' → 'Jazz band'."""
    return category.replace("-", " ").capitalize()


def _order(category: str) -> tuple[int, str]:
    known = category in CATEGORY_ORDER
    return (CATEGORY_ORDER.index(category) if known else len(CATEGORY_ORDER), category)


def waveform_svg(audio: np.ndarray, columns: int) -> str:
    """A waveform picture of (channels, frames) audio: the highest and lowest sample of each of
    ``columns`` slices as one filled outline, scaled to the box (full scale = the box's edge)."""
    frames = audio.shape[1]
    per = max(1, -(-frames // columns))
    padded = np.zeros((audio.shape[0], per * columns), dtype=np.float32)
    padded[:, :frames] = audio
    blocks = padded.reshape(audio.shape[0], columns, per)
    hi = np.clip(blocks.max(axis=(0, 2)), 0, 1)
    lo = np.clip(blocks.min(axis=(0, 2)), -1, 0)
    mid = WAVEFORM_HEIGHT / 2
    x = np.arange(columns) + 0.5
    top = " ".join(f"{a:.1f},{mid - h * mid:.1f}" for a, h in zip(x, hi))
    bottom = " ".join(f"{a:.1f},{mid - v * mid:.1f}" for a, v in zip(x[::-1], lo[::-1]))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {columns} {WAVEFORM_HEIGHT}" '
            f'preserveAspectRatio="none"><polygon fill="#2b5d9b" points="{top} {bottom}"/></svg>\n')


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)  # whole seconds down, as the browsers' players count
    return f"{m}:{s:02d}"


def _size(path: Path) -> str:
    try:
        n = path.stat().st_size
    except OSError:
        return ""
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{max(1, round(n / 1e3))} kB"


def _piece(out_dir: Path, base: str, slug: str, entry: dict) -> str:
    folder = out_dir / base / slug
    href = lambda name: quote(f"{base}/{slug}/{name}")  # noqa: E731
    e = html.escape
    sources = "".join(f'<source src="{href(f)}" type="{MIME.get(Path(f).suffix[1:], "")}">'
                      for f in entry["player"])
    mp3 = next((f for f in entry["player"] if f.endswith(".mp3")), entry["player"][0])
    score = Path(entry["score"])
    downloads = [
        (mp3, f"{Path(mp3).suffix[1:].upper()}", f"{slug}{Path(mp3).suffix}"),
        (entry["wav"], "WAV", f"{slug}.wav"),
        (entry["stems_zip"], "Stems (zip)", f"{slug}-stems.zip"),
        (entry["score"], f"Score ({score.suffix[1:]})", score.name),
    ]
    links = "".join(f'<span><a href="{href(f)}" download="{e(name)}">{label}</a> '
                    f'<small>{_size(folder / f)}</small></span>' for f, label, name in downloads)
    links += f'<span><a href="{href(entry["report"])}">Report</a></span>'
    meta = f'{e(entry["instrumentation"])} · {_duration(entry["duration_s"])}'
    rights = f'<p class="rights">{e(entry["copyright"])}</p>' if entry.get("copyright") else ""
    by = f'<p class="by">{e(entry["composer"])}</p>' if entry.get("composer") else ""
    return (f'<article id="{e(slug)}">\n<h3>{e(entry["title"])}</h3>{by}\n'
            f'<p class="meta">{meta}</p>\n'
            f'<img class="wave" src="{href(entry["waveform"])}" alt="Waveform of '
            f'{e(entry["title"])}" width="{WAVEFORM_COLUMNS}" height="{WAVEFORM_HEIGHT}">\n'
            f'<audio controls preload="metadata" data-duration="{entry["duration_s"]:.3f}">'
            f'{sources}</audio>\n<p class="downloads">{links}</p>{rights}\n</article>')


def write_site(out_dir: Path, pieces: list[tuple[str, dict]], *, pieces_folder: str,
               title: str) -> Path:
    """Write ``out_dir/index.html`` for ``pieces`` (folder name under ``pieces_folder``, site
    entry as made by :func:`pipeline.portfolio.build._master_piece`)."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    for slug, entry in pieces:
        groups.setdefault(entry["category"], []).append((slug, entry))
    order = sorted(groups, key=_order)
    e = html.escape
    counts = " · ".join(f'<a href="#{c}">{len(groups[c])} {e(category_name(c))}</a>' for c in order)
    sections = []
    for c in order:
        members = sorted(groups[c], key=lambda p: (p[1]["title"].lower(), p[0]))
        cards = "\n".join(_piece(out_dir, pieces_folder, slug, entry) for slug, entry in members)
        sections.append(f'<section id="{e(c)}">\n<h2>{e(category_name(c))} '
                        f'<small>{len(members)} piece{"s" if len(members) != 1 else ""}</small></h2>\n'
                        f'<div class="pieces">\n{cards}\n</div>\n</section>')
    total_s = sum(entry["duration_s"] for _, entry in pieces)
    page = (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n'
            f'<header>\n<h1>{e(title)}</h1>\n<p class="counts">{counts}</p>\n</header>\n'
            f'<main>\n{chr(10).join(sections)}\n</main>\n'
            f'<footer>{len(pieces)} pieces, {_duration(total_s)} of music. Demo recordings '
            f'rendered from the scores by score2audio {__version__}.</footer>\n</body>\n</html>\n')
    path = out_dir / "index.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
