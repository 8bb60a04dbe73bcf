#!/usr/bin/env bash
# Make sure FluidSynth and the General MIDI soundfonts are installed (and, with --test, the tools
# the test suite uses: ffmpeg as an independent loudness meter, chromium to load the portfolio
# page; with --bench, the references make bench times: the fluidsynth program and MuseScore 3).
# Installs them with apt-get where
# apt and root (or password-less sudo) are available; elsewhere says what to run, and fails.
set -u
want_test=0
want_bench=0
[ "${1:-}" = "--test" ] && want_test=1
[ "${1:-}" = "--bench" ] && want_bench=1

have_fluidsynth() {
  # ldconfig lives in /sbin, which a plain user's PATH often lacks
  { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libfluidsynth\.so' && return 0
  for d in /usr/lib /usr/lib/*-linux-gnu /usr/local/lib /opt/homebrew/lib /usr/lib64; do
    ls "$d"/libfluidsynth* >/dev/null 2>&1 && return 0
  done
  return 1
}
have_soundfont() {
  [ -n "${SOUNDFONT:-}" ] && [ -f "$SOUNDFONT" ] && return 0
  for f in soundfonts/*.sf[23] /usr/share/sounds/sf3/*.sf3 /usr/share/sounds/sf2/*.sf2 \
           /usr/share/soundfonts/*.sf[23] /opt/homebrew/share/soundfonts/*.sf[23]; do
    [ -e "$f" ] && return 0
  done
  return 1
}

missing=()
# Debian's python3 makes virtual environments only with python3-venv installed
"${PYTHON:-python3}" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
have_fluidsynth || missing+=(libfluidsynth3)
have_soundfont || missing+=(musescore-general-soundfont fluid-soundfont-gm)
if [ "$want_test" = 1 ]; then
  command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
  # the portfolio's page is tested in a headless browser
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || missing+=(chromium)
  [ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing+=(fluid-soundfont-gm)
  [ -e /usr/share/sounds/sf3/MuseScore_General.sf3 ] || missing+=(musescore-general-soundfont)
fi
if [ "$want_bench" = 1 ]; then
  command -v fluidsynth >/dev/null 2>&1 || missing+=(fluidsynth)
  command -v mscore3 >/dev/null 2>&1 || command -v mscore >/dev/null 2>&1 || missing+=(musescore3)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
  fi
  if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
    echo "Installing ${missing[*]} (first run only)…"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null && \
      $sudo apt-get install -y -qq "${missing[@]}" >/dev/null && exit 0
    echo "apt-get could not install: ${missing[*]}" >&2
    exit 1
  fi
  echo "score2audio needs: ${missing[*]}. Install them with:" >&2
  echo "    sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "score2audio needs FluidSynth and a General MIDI soundfont (missing: ${missing[*]})." >&2
if command -v brew >/dev/null 2>&1; then
  echo "Install with:  brew install fluid-synth ffmpeg   and put a .sf2/.sf3 soundfont in soundfonts/" >&2
elif command -v dnf >/dev/null 2>&1; then
  echo "Install with:  sudo dnf install fluidsynth-libs fluid-soundfont-gm ffmpeg" >&2
elif command -v pacman >/dev/null 2>&1; then
  echo "Install with:  sudo pacman -S fluidsynth soundfont-fluid ffmpeg" >&2
else
  echo "Install FluidSynth 2.x from your package manager, and put a .sf2/.sf3 soundfont in soundfonts/" >&2
fi
exit 1
