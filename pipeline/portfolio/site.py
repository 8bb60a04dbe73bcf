"""The portfolio's static site: ``index.html`` (the composer's name and words, a filter by
ensemble, a grid of cards grouped by ensemble category), a page per piece
(``pieces/<slug>/index.html``: its notes, the player, the downloads and the engraved score that
follows the audio, bar by bar, from the piece's timemap) and an embeddable player per piece
(``pieces/<slug>/embed.html``).

Everything it needs is in the site folder and linked relatively: the waveforms and the score's
pages are SVG files made at build time, the styles and the one script are ours
(``assets/site.css``, ``assets/site.js``, copied from this package), the timemap is in the page
itself (a page opened from disk may not fetch a file). So it works opened from disk, served by
``python -m http.server`` or copied to any web host, with no network and no CDN. A page is
written only when its text changes.
"""
from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import numpy as np

import json
from importlib import resources

from pipeline import __version__
from pipeline.files import atomic_path
from pipeline.output.export import read_timemap
from pipeline.portfolio import engrave
from pipeline.settings.sidecar import PortfolioSettings

#: The order of the categories on the page; any other category follows, alphabetically.
CATEGORY_ORDER = ("solo", "duet", "trio", "quartet", "quintet", "sextet", "jazz-band",
                  "brass-band", "concert-band", "orchestra", "choir")
WAVEFORM_COLUMNS = 400
WAVEFORM_HEIGHT = 48
MIME = {"mp3": "audio/mpeg", "ogg": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac"}
ASSETS = "assets"
ASSET_FILES = ("site.css", "site.js")
PIECE_PAGE, EMBED_PAGE = "index.html", "embed.html"
#: The embeddable player's frame height (CSS pixels): title, waveform and the browser's player.
EMBED_HEIGHT = 190
CREDIT = ("Scores engraved with <a href=\"https://www.verovio.org\">Verovio</a> (LGPL-3.0) in the "
          "Leipzig music font (SIL Open Font License 1.1).")

def category_name(category: str) -> str:
    """'jazz-band' → 'Jazz band'."""
    return category.replace("-", " ").capitalize()


def _orderer(first: tuple[str, ...]):
    """The sort key of the categories: ``first`` (the composer's order), then the design's,
    then any other, alphabetically."""
    order = tuple(first) + tuple(c for c in CATEGORY_ORDER if c not in first)

    def key(category: str) -> tuple[int, str]:
        return (order.index(category) if category in order else len(order), category)
    return key


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




def _paragraphs(text: str) -> str:
    """Plain text as HTML paragraphs (a blank line between them), escaped."""
    parts = [" ".join(p.split()) for p in text.replace("\r\n", "\n").split("\n\n")]
    return "".join(f"<p>{html.escape(p)}</p>" for p in parts if p)


def _contact(contact: str) -> str:
    e = html.escape
    if contact.startswith(("http://", "https://")):
        return f'<a href="{e(contact)}" rel="me">{e(contact.split("://", 1)[1].rstrip("/"))}</a>'
    if "@" in contact and " " not in contact:
        return f'<a href="mailto:{e(contact.removeprefix("mailto:"))}">{e(contact.removeprefix("mailto:"))}</a>'
    return e(contact)


def _head(title: str, root: str, *, description: str = "") -> str:
    desc = f'<meta name="description" content="{html.escape(description)}">\n' if description else ""
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n{desc}'
            f'<title>{html.escape(title)}</title>\n'
            f'<link rel="stylesheet" href="{root}{ASSETS}/site.css">\n'
            f'<script src="{root}{ASSETS}/site.js" defer></script>\n</head>\n')


def _wave(href: str, title: str, audio_id: str, duration_s: float) -> str:
    """The waveform, a slider that seeks its player."""
    total = int(duration_s)
    return (f'<div class="wave" data-audio="{audio_id}" role="slider" tabindex="0" '
            f'aria-label="Seek in {html.escape(title)}" aria-valuemin="0" '
            f'aria-valuemax="{total}" aria-valuenow="0" aria-valuetext="0:00 of {_duration(duration_s)}">'
            f'<img src="{href}" alt="" width="{WAVEFORM_COLUMNS}" height="{WAVEFORM_HEIGHT}">'
            f'<span class="played"></span></div>')


def _audio(entry: dict, href, audio_id: str) -> str:
    sources = "".join(f'<source src="{href(f)}" type="{MIME.get(Path(f).suffix[1:], "")}">'
                      for f in entry["player"])
    return (f'<audio id="{audio_id}" controls preload="metadata" '
            f'data-duration="{entry["duration_s"]:.3f}">{sources}</audio>')


def _downloads(folder: Path, slug: str, entry: dict, href) -> str:
    e = html.escape
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
    return links + f'<span><a href="{href(entry["report"])}">Report</a></span>'


def _card(out_dir: Path, base: str, slug: str, entry: dict, note: str | None) -> str:
    folder = out_dir / base / slug
    href = lambda name: quote(f"{base}/{slug}/{name}")  # noqa: E731
    e = html.escape
    audio_id = f"audio-{slug}"
    meta = f'{e(entry["instrumentation"])} · {_duration(entry["duration_s"])}'
    rights = f'<p class="rights">{e(entry["copyright"])}</p>' if entry.get("copyright") else ""
    by = f'<p class="by">{e(entry["composer"])}</p>' if entry.get("composer") else ""
    first = " ".join(note.split("\n\n")[0].split()) if note else ""
    # every card keeps the note's room, so the grid's rows line up whatever is written
    note_html = (f'<p class="note">{e(first)}</p>' if first
                 else '<p class="note empty" aria-hidden="true">&nbsp;</p>')
    page = href(PIECE_PAGE)
    more = "Score, notes and details" if entry.get("engraved") else "Notes and details"
    return (f'<article class="card" id="{e(slug)}">\n'
            f'<h3><a href="{page}">{e(entry["title"])}</a></h3>{by}\n'
            f'<p class="meta">{meta}</p>\n{note_html}\n'
            f'{_wave(href(entry["waveform"]), entry["title"], audio_id, entry["duration_s"])}\n'
            f'{_audio(entry, href, audio_id)}\n'
            f'<p class="downloads">{_downloads(folder, slug, entry, href)}</p>\n'
            f'<p class="more"><a href="{page}">{more} →</a></p>{rights}\n</article>')


def write_site(out_dir: Path, pieces: list[tuple[str, dict]], *, pieces_folder: str,
               about: PortfolioSettings, notes: dict[str, str] | None = None) -> Path:
    """Write ``out_dir/index.html``, the assets and each piece's pages for ``pieces`` (folder
    name under ``pieces_folder``, site entry as made by
    :func:`pipeline.portfolio.build._master_piece`); ``about``: the composer's words
    (``about.title`` is the site's title); ``notes``: the programme notes by folder name. Only
    the files whose text changed are written."""
    notes = notes or {}
    _write_assets(out_dir)
    for slug, entry in pieces:
        _piece_pages(out_dir, pieces_folder, slug, entry, notes.get(slug), about)
    groups: dict[str, list[tuple[str, dict]]] = {}
    for slug, entry in pieces:
        groups.setdefault(entry["category"], []).append((slug, entry))
    order = sorted(groups, key=_orderer(about.ensemble_order))
    e = html.escape
    title = about.title or "Portfolio"
    counts = " · ".join(f'<a href="#{c}">{len(groups[c])} {e(category_name(c))}</a>' for c in order)
    filters = "".join(f'<button type="button" data-filter="{e(c)}" aria-pressed="false">'
                      f'{e(category_name(c))}</button>' for c in order)
    filters = (f'<div class="filters" role="group" aria-label="Show the pieces for">'
               f'<button type="button" data-filter="all" aria-pressed="true">All</button>'
               f'{filters}</div>') if len(order) > 1 else ""
    sections = []
    for c in order:
        members = sorted(groups[c], key=lambda p: (p[1]["title"].lower(), p[0]))
        cards = "\n".join(_card(out_dir, pieces_folder, slug, entry, notes.get(slug))
                          for slug, entry in members)
        sections.append(f'<section id="{e(c)}" class="category" data-category="{e(c)}">\n'
                        f'<h2>{e(category_name(c))} '
                        f'<small>{len(members)} piece{"s" if len(members) != 1 else ""}</small></h2>\n'
                        f'<div class="pieces">\n{cards}\n</div>\n</section>')
    total_s = sum(entry["duration_s"] for _, entry in pieces)
    composer = f'<p class="composer">{e(about.composer)}</p>\n' if about.composer else ""
    bio = f'<div class="bio">{_paragraphs(about.bio)}</div>\n' if about.bio else ""
    contact = f'<p class="contact">{_contact(about.contact)}</p>\n' if about.contact else ""
    page = (_head(title, "", description=about.composer or "") + '<body>\n'
            f'<a class="skip" href="#pieces">Skip to the pieces</a>\n'
            f'<header>\n<h1>{e(title)}</h1>\n{composer}{bio}{contact}'
            f'<p class="counts">{counts}</p>\n'
            f'<noscript><style>.filters {{ display: none; }}</style></noscript>{filters}\n</header>\n'
            f'<main id="pieces">\n{chr(10).join(sections)}\n</main>\n'
            f'<footer>{len(pieces)} piece{"s" if len(pieces) != 1 else ""}, '
            f'{_duration(total_s)} of music. Demo recordings '
            f'rendered from the scores by score2audio {__version__}.</footer>\n</body>\n</html>\n')
    path = out_dir / "index.html"
    _write_if_changed(path, page)
    return path


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` (atomically) unless it holds it already; whether it wrote."""
    try:
        if path.read_text("utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return True


def _write_assets(out_dir: Path) -> None:
    for name in ASSET_FILES:
        text = resources.files("pipeline.portfolio").joinpath("assets", name).read_text("utf-8")
        _write_if_changed(out_dir / ASSETS / name, text)


def _follow_data(folder: Path, entry: dict, engraving: engrave.Engraving | None) -> dict | None:
    """What the page's script needs to follow the score: the played bars (start, end, written
    measure, printed number) and each written measure's box on its page; None without a
    timemap."""
    if not entry.get("timemap"):
        return None
    try:
        timemap = read_timemap(folder / entry["timemap"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not timemap.bars:
        return None
    written = {b.measure: b.number for b in timemap.bars}
    boxes = engrave.measure_boxes(engraving, written) if engraving is not None else {}
    return {"bars": [[b.start_s, b.end_s, b.measure, b.number] for b in timemap.bars],
            "boxes": {str(k): [m.page, *m.box] for k, m in sorted(boxes.items())
                      if m.box[2] > 0}}


def _piece_pages(out_dir: Path, base: str, slug: str, entry: dict, note: str | None,
                 about: PortfolioSettings) -> None:
    """``pieces/<slug>/index.html`` and ``embed.html``."""
    folder = out_dir / base / slug
    href = lambda name: quote(name)  # noqa: E731
    e = html.escape
    engraving = engrave.read_layout(folder) if entry.get("engraved") else None
    follow = _follow_data(folder, entry, engraving)
    title, site_title = entry["title"], about.title or "Portfolio"
    composer = entry.get("composer") or about.composer or ""
    by = f'<p class="composer">{e(composer)}</p>\n' if composer else ""
    meta = (f'{e(entry["instrumentation"])} · {e(category_name(entry["category"]))} · '
            f'{_duration(entry["duration_s"])}')
    notes_html = f'<div class="notes">{_paragraphs(note)}</div>\n' if note else ""
    rights = f'<p class="rights">{e(entry["copyright"])}</p>\n' if entry.get("copyright") else ""
    rehearsal = ""
    if entry.get("rehearsal"):
        links = "".join(f'<span><a href="{href(t["file"])}" download="{e(slug)}-'
                        f'{e(Path(t["file"]).name)}">{e(t["part"])}</a> '
                        f'<small>{_size(folder / t["file"])}</small></span>'
                        for t in entry["rehearsal"])
        rehearsal = (f'<p class="downloads rehearsal" aria-label="Rehearsal tracks">'
                     f'<span>Rehearsal tracks (each part louder, in the middle):</span>{links}'
                     f'</p>\n')
    audio_id = "player"
    barnav = ""
    if follow is not None and follow["boxes"]:
        barnav = ('<div class="barnav"><output id="bar-now" aria-label="Bar being played">—'
                  '</output><button type="button" data-step="-1" aria-label="Previous bar">◀'
                  '</button><button type="button" data-step="1" aria-label="Next bar">▶</button>'
                  '<form id="bar-go"><label>Bar <input name="bar" inputmode="numeric" '
                  'autocomplete="off" aria-label="Go to bar number"></label> '
                  '<button type="submit">Go</button></form></div>')
    if engraving is not None:
        n = len(engraving.pages)
        # each page's box has its size before its picture arrives: no layout shift
        pages = "\n".join(
            f'<div class="page" style="aspect-ratio: {w} / {h}">'
            f'<img src="{href(engrave.FOLDER + "/" + name)}" width="{w}" height="{h}" '
            f'loading="{"eager" if i == 0 else "lazy"}" decoding="async" '
            f'alt="{e(title)}, score page {i + 1} of {n}"><div class="bar-mark" hidden></div></div>'
            for i, (name, (w, h)) in enumerate(zip(engraving.pages, engraving.sizes)))
        hint = (" Click a bar to play from there." if follow and follow["boxes"] else "")
        score = (f'<section class="score" aria-labelledby="score-h">\n<h2 id="score-h">Score '
                 f'<small>{n} page{"s" if n != 1 else ""}.{hint}</small></h2>\n'
                 f'<div class="pages">\n{pages}\n</div>\n</section>\n')
    elif Path(entry["score"]).suffix.lower() in (".mid", ".midi"):
        score = ('<section class="score"><p class="no-score">This piece was written as a MIDI '
                 'file, which holds the notes but no engraving: there is no score to show. '
                 'The recording, its stems and the MIDI file are above.</p></section>\n')
    else:
        score = ('<section class="score"><p class="no-score">The score could not be engraved '
                 'for this page; download it above.</p></section>\n')
    # "</" could end the script element early: JSON may write it "<\/"
    data = json.dumps(follow, separators=(",", ":")).replace("</", "<\\/")
    timemap = (f'<script type="application/json" id="timemap">{data}</script>\n'
               if follow is not None else "")
    embed_src = href(EMBED_PAGE)
    snippet = (f'<iframe src="{embed_src}" title="{e(title)}" width="100%" '
               f'height="{EMBED_HEIGHT}" style="border:0;max-width:40rem" loading="lazy">'
               f'</iframe>')
    page = (_head(f"{title} — {site_title}", "../../", description=f"{title}, {composer}".strip(", "))
            + '<body>\n<a class="skip" href="#main">Skip to the music</a>\n'
            f'<nav class="crumbs" aria-label="Site"><a href="../../index.html#{e(slug)}">← '
            f'{e(site_title)}</a></nav>\n'
            f'<header class="piece-head">\n<h1>{e(title)}</h1>\n{by}<p class="meta">{meta}</p>\n'
            f'{notes_html}<p class="downloads" aria-label="Downloads">'
            f'{_downloads(folder, slug, entry, href)}</p>\n{rehearsal}{rights}</header>\n'
            f'<main id="main">\n'
            f'<div class="player"><div class="player-inner">'
            f'{_wave(href(entry["waveform"]), title, audio_id, entry["duration_s"])}'
            f'{_audio(entry, href, audio_id)}{barnav}</div></div>\n{score}'
            f'<section class="embed" aria-labelledby="embed-h"><h2 id="embed-h">Embed the player'
            f'</h2>\n<label for="embed-code">Copy this into your own site or blog (the address '
            f'is this page\'s once the site is on the web):</label>\n<textarea id="embed-code" '
            f'readonly>{e(snippet)}</textarea>\n<button type="button" id="embed-copy">Copy'
            f'</button></section>\n</main>\n{timemap}'
            f'<footer>Demo recording rendered from the score by score2audio {__version__}.'
            f'{" " + CREDIT if engraving is not None else ""}</footer>\n</body>\n</html>\n')
    _write_if_changed(folder / PIECE_PAGE, page)
    embed = (_head(f"{title} — {site_title}", "../../") + '<body class="embed">\n'
             f'<div class="embed-player">\n<h1><a href="{href(PIECE_PAGE)}" target="_blank" '
             f'rel="noopener">{e(title)}</a></h1>\n{by}'
             f'{_wave(href(entry["waveform"]), title, audio_id, entry["duration_s"])}\n'
             f'{_audio(entry, href, audio_id)}\n</div>\n</body>\n</html>\n')
    _write_if_changed(folder / EMBED_PAGE, embed)
