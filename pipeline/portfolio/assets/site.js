// score2audio portfolio: waveforms that seek, one player at a time, the filter by ensemble and,
// on a piece's page, the score that follows the audio. Plain JavaScript, no library; everything
// it needs is in the page (the timemap as JSON in a <script> element), so it works from disk.
"use strict";

(function () {
  const audios = [...document.querySelectorAll("audio")];

  // one player at a time
  for (const audio of audios) {
    audio.addEventListener("play", () => {
      for (const other of audios) if (other !== audio) other.pause();
    });
  }

  function durationOf(audio) {
    return isFinite(audio.duration) && audio.duration > 0 ? audio.duration
      : Number(audio.dataset.duration) || 0;
  }

  function seek(audio, seconds) {
    const end = durationOf(audio);
    audio.currentTime = Math.max(0, end ? Math.min(seconds, end - 0.01) : seconds);
  }

  // the waveform: a slider over the recording (click, or arrow keys)
  for (const wave of document.querySelectorAll(".wave[data-audio]")) {
    const audio = document.getElementById(wave.dataset.audio);
    if (!audio) continue;
    const played = wave.querySelector(".played");
    const show = () => {
      const end = durationOf(audio);
      const fraction = end ? audio.currentTime / end : 0;
      if (played) played.style.transform = `scaleX(${Math.min(1, fraction)})`;
      wave.setAttribute("aria-valuenow", String(Math.round(audio.currentTime)));
      wave.setAttribute("aria-valuetext", clock(audio.currentTime) + " of " + clock(end));
    };
    audio.addEventListener("timeupdate", show);
    audio.addEventListener("seeked", show);
    wave.addEventListener("click", (event) => {
      const box = wave.getBoundingClientRect();
      seek(audio, (event.clientX - box.left) / box.width * durationOf(audio));
    });
    wave.addEventListener("keydown", (event) => {
      const step = { ArrowLeft: -5, ArrowDown: -5, ArrowRight: 5, ArrowUp: 5,
                     PageDown: -30, PageUp: 30 }[event.key];
      if (step !== undefined) seek(audio, audio.currentTime + step);
      else if (event.key === "Home") seek(audio, 0);
      else if (event.key === "End") seek(audio, durationOf(audio));
      else return;
      event.preventDefault();
    });
  }

  function clock(seconds) {
    const s = Math.floor(seconds || 0);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  // the index: the filter by ensemble
  const filters = document.querySelector(".filters");
  if (filters) {
    const buttons = [...filters.querySelectorAll("button")];
    filters.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      const wanted = button.dataset.filter;
      for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
      for (const section of document.querySelectorAll("section.category")) {
        section.hidden = wanted !== "all" && section.dataset.category !== wanted;
      }
    });
  }

  // a piece's page: the embed snippet with this site's address
  const snippet = document.getElementById("embed-code");
  if (snippet && /^https?:$/.test(location.protocol)) {
    const src = new URL("embed.html", location.href).href;
    snippet.value = snippet.value.replace(/src="[^"]*"/, `src="${src}"`);
  }
  const copy = document.getElementById("embed-copy");
  if (copy && snippet) {
    copy.addEventListener("click", async () => {
      snippet.select();
      try { await navigator.clipboard.writeText(snippet.value); }
      catch (e) { document.execCommand("copy"); }
      copy.textContent = "Copied";
      setTimeout(() => { copy.textContent = "Copy"; }, 2000);
    });
  }

  // a piece's page: the score follows the audio
  const data = document.getElementById("timemap");
  const player = document.getElementById("player");
  if (!data || !player) return;
  const map = JSON.parse(data.textContent);
  const bars = map.bars;              // in play order: [start_s, end_s, measure, number]
  const boxes = map.boxes;            // measure → [page, x, y, width, height] (fractions)
  const firstStart = {};              // measure → its first start
  const byNumber = {};                // printed number → measure
  for (const [start, , measure, number] of bars) {
    if (!(measure in firstStart)) firstStart[measure] = start;
    if (!(number in byNumber)) byNumber[number] = measure;
  }
  const pages = [...document.querySelectorAll(".page")];
  const readout = document.getElementById("bar-now");
  let current = -1;

  function playedAt(t) {
    // the last bar started by t (binary search); -1 before the first (the lead-in)
    let lo = 0, hi = bars.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (bars[mid][0] <= t + 1e-6) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  function mark(index, follow) {
    if (index === current) return;
    current = index;
    for (const old of document.querySelectorAll(".bar-mark")) old.hidden = true;
    document.body.dataset.playedBar = String(index);
    if (index < 0) {
      document.body.dataset.measure = "";
      if (readout) readout.value = "—";
      return;
    }
    const [, , measure, number] = bars[index];
    document.body.dataset.measure = String(measure);
    if (readout) readout.value = "Bar " + number;
    const box = boxes[measure];
    if (!box) return;
    const page = pages[box[0] - 1];
    if (!page) return;
    const el = page.querySelector(".bar-mark");
    el.style.left = box[1] * 100 + "%";
    el.style.top = box[2] * 100 + "%";
    el.style.width = box[3] * 100 + "%";
    el.style.height = box[4] * 100 + "%";
    el.dataset.measure = String(measure);
    el.hidden = false;
    if (follow) keepInView(el);
  }

  function keepInView(el) {
    const r = el.getBoundingClientRect();
    const top = (document.querySelector(".player") || { offsetHeight: 0 }).offsetHeight;
    if (r.top >= top + 8 && r.bottom <= window.innerHeight - 8) return;
    const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    window.scrollBy({ top: r.top - top - window.innerHeight * 0.15,
                      behavior: reduce ? "auto" : "smooth" });
  }

  function update() { mark(playedAt(player.currentTime), !player.paused || seeking); }
  let seeking = false;
  player.addEventListener("timeupdate", update);
  player.addEventListener("seeked", () => { update(); seeking = false; });
  player.addEventListener("seeking", () => { seeking = true; update(); });
  (function tick() {                  // smoother than timeupdate's four times a second
    if (!player.paused) update();
    requestAnimationFrame(tick);
  })();

  function goToMeasure(measure) {
    if (measure === undefined || !(measure in firstStart)) return false;
    seeking = true;
    seek(player, firstStart[measure] + 0.001);
    update();
    return true;
  }

  // clicking a bar of the score: the audio goes to the first time it is played
  for (const page of pages) {
    page.addEventListener("click", (event) => {
      const r = page.getBoundingClientRect();
      const x = (event.clientX - r.left) / r.width, y = (event.clientY - r.top) / r.height;
      const n = pages.indexOf(page) + 1;
      let best, bestDistance = Infinity;
      for (const [measure, b] of Object.entries(boxes)) {
        if (b[0] !== n) continue;
        const dx = Math.max(b[1] - x, 0, x - (b[1] + b[3]));
        const dy = Math.max(b[2] - y, 0, y - (b[2] + b[4]));
        const d = dx + 4 * dy;        // a click between systems belongs to the nearer one
        if (d < bestDistance) { bestDistance = d; best = Number(measure); }
      }
      if (best !== undefined && bestDistance < 0.05) goToMeasure(best);
    });
  }

  // keyboard: go to a bar by its number, or step bar by bar
  const form = document.getElementById("bar-go");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const wanted = form.elements.bar.value.trim();
      if (!goToMeasure(byNumber[wanted])) form.elements.bar.setCustomValidity("No such bar");
      else form.elements.bar.setCustomValidity("");
      form.reportValidity();
    });
    form.elements.bar.addEventListener("input", () => form.elements.bar.setCustomValidity(""));
  }
  for (const button of document.querySelectorAll("[data-step]")) {
    button.addEventListener("click", () => {
      const i = Math.max(0, Math.min(bars.length - 1, current + Number(button.dataset.step)));
      if (bars[i]) { seeking = true; seek(player, bars[i][0] + 0.001); update(); }
    });
  }
  update();
})();
