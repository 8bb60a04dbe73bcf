# score2audio — the two commands a composer needs:
#   make render SCORE=scores/piano-nocturne.musicxml [OUT=out] [ENSEMBLE=…] [LAYOUT=…] [PRESET=…]
#               [SOUNDFONT=…] [HUMANIZE=0–1] [SEED=n] [ATTACK=0]
#               [VIBRATO=0] [PHRASING=0] [REHEARSAL=1 [COUNT_IN=1]] [BARS=12-24 [PASS=2] [LOOP=1]]
#   make portfolio SCORES=scores/ OUT=site/ [DASK=tcp://host:8786]
#   make master MIX=my-mix.wav [PRESET=cd,streaming] [OUT=out] [REFERENCE=…] [ENSEMBLE=…]
#   make meter FILES="a.wav b.flac"
#   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= out
SCORE  ?=
ENSEMBLE ?=
LAYOUT ?=
PRESET ?=
SOUNDFONT ?=
SAMPLE_RATE ?=
REFERENCE ?=
SWING ?=
HUMANIZE ?=
SEED ?=
MIX_STEMS ?=
ATTACK ?=
VIBRATO ?=
PHRASING ?=
REHEARSAL ?=
BARS ?=
PASS ?=
LOOP ?=
COUNT_IN ?=
REHEARSAL_PART_DB ?=
REHEARSAL_OTHERS_DB ?=
BENCH_ARGS ?=
AGREEMENT_ARGS ?=
CORPUS ?=
CORPUS_ARGS ?=

MIX ?=
FILES ?=
METER_ARGS ?=

SCORES ?= scores
DASK ?=
JOBS ?=
# the portfolio's site goes to OUT when given, else to site/ (out/ holds single renders)
SITE := $(if $(filter command line environment,$(origin OUT)),$(OUT),site)
PORTFOLIO_ARGS := --out "$(SITE)" $(if $(SOUNDFONT),--soundfont "$(SOUNDFONT)") \
	$(if $(SAMPLE_RATE),--sample-rate "$(SAMPLE_RATE)") $(if $(DASK),--dask "$(DASK)") \
	$(if $(JOBS),--jobs "$(JOBS)")

RENDER_ARGS := --out "$(OUT)" $(if $(ENSEMBLE),--ensemble "$(ENSEMBLE)") $(if $(LAYOUT),--layout "$(LAYOUT)") \
	$(if $(PRESET),--preset "$(PRESET)") $(if $(SOUNDFONT),--soundfont "$(SOUNDFONT)") \
	$(if $(SAMPLE_RATE),--sample-rate "$(SAMPLE_RATE)") $(if $(REFERENCE),--reference "$(REFERENCE)") \
	$(if $(SWING),--swing "$(SWING)") $(if $(HUMANIZE),--humanize "$(HUMANIZE)") \
	$(if $(SEED),--seed "$(SEED)") $(if $(filter 1 yes true,$(MIX_STEMS)),--mix-stems) \
	$(if $(filter 0 no false,$(ATTACK)),--no-attack-compensation) \
	$(if $(filter 0 no false,$(VIBRATO)),--no-vibrato) \
	$(if $(filter 0 no false,$(PHRASING)),--no-phrasing) \
	$(if $(filter 1 yes true,$(REHEARSAL)),--rehearsal) $(if $(filter 1 yes true,$(COUNT_IN)),--count-in) \
	$(if $(REHEARSAL_PART_DB),--rehearsal-part-db "$(REHEARSAL_PART_DB)") \
	$(if $(REHEARSAL_OTHERS_DB),--rehearsal-others-db "$(REHEARSAL_OTHERS_DB)") \
	$(if $(BARS),--bars "$(BARS)") $(if $(PASS),--pass "$(PASS)") $(if $(filter 1 yes true,$(LOOP)),--loop)

MASTER_ARGS := --out "$(OUT)" $(if $(PRESET),--preset "$(PRESET)") \
	$(if $(REFERENCE),--reference "$(REFERENCE)") $(if $(ENSEMBLE),--ensemble "$(ENSEMBLE)")

.PHONY: render portfolio master meter test bench bench-master agreement corpus setup system-deps test-deps clean help

help:
	@echo "make render SCORE=path/to/score.musicxml   render a score into $(OUT)/<name>/"
	@echo "    options: OUT=dir ENSEMBLE=name LAYOUT=name PRESET=name[,name] SOUNDFONT=file.sf2 SAMPLE_RATE=hz"
	@echo "             (a <score-name>.toml or piece.toml beside the score sets these per piece)"
	@echo "             REFERENCE=track.wav (match a finished recording's tone and loudness)"
	@echo "             SWING=2 (swung eighths; a jazz band swings by default, SWING=1 straightens)"
	@echo "             HUMANIZE=0.5 (players' timing/velocity variation, 0-1, off by default) SEED=n"
	@echo "             MIX_STEMS=1 (also write mix-stems/, each instrument's part of the mix, for a DAW)"
	@echo "             ATTACK=0 (notes start as written, not early by the time their sound takes to speak)"
	@echo "             VIBRATO=0 (no vibrato added to straight samples of saxes, singers, jazz brass)"
	@echo "             PHRASING=0 (no phrase shaping: slur rises, swells, accent falls, the last note's fade)"
	@echo "             REHEARSAL=1 (also rehearsal/<part>.mp3: each part +6 dB and centred, the rest -6 dB;"
	@echo "             REHEARSAL_PART_DB=…, REHEARSAL_OTHERS_DB=… change them; COUNT_IN=1: a bar of clicks first)"
	@echo "             BARS=12-24 (only those bars, as played; PASS=2 from the repeat's second time;"
	@echo "             LOOP=1 made to loop seamlessly)"
	@echo "make portfolio SCORES=scores/ OUT=site/     render every score in a folder (again: only"
	@echo "    what changed) and publish them as a web page, OUT/index.html"
	@echo "    options: DASK=tcp://scheduler:8786 (render on a Dask cluster) JOBS=n SOUNDFONT=file"
	@echo "make master MIX=my-mix.wav                  master a mix you made (WAV/FLAC) into $(OUT)/<name>/"
	@echo "    options: PRESET=name[,name] OUT=dir REFERENCE=track.wav"
	@echo "             ENSEMBLE=name (master it as that ensemble's pieces: tone, glue, guard)"
	@echo "make meter FILES=\"a.wav b.flac\"             loudness (LUFS), range (LU), true peak (dBTP), PLR"
	@echo "    options: METER_ARGS=--json"
	@echo "make test                                   run the test suite"
	@echo "make bench                                  time whole renders beside fluidsynth and MuseScore"
	@echo "    BENCH_ARGS='--cases grosse-fuge,orchestra-5 --warm --no-references --json FILE'"
	@echo "make agreement                              compare our performances with MuseScore 3's on corpus scores"
	@echo "make corpus CORPUS=dir                      perform every score in a folder: a line per file, a summary"

render: setup
	@if [ -z "$(SCORE)" ]; then echo "usage: make render SCORE=path/to/score.musicxml" >&2; exit 2; fi
	@$(BIN)/score2audio render "$(SCORE)" $(RENDER_ARGS)

portfolio: setup
	@$(BIN)/score2audio portfolio "$(SCORES)" $(PORTFOLIO_ARGS)

master: setup
	@if [ -z "$(MIX)" ]; then echo "usage: make master MIX=my-mix.wav [PRESET=cd,streaming]" >&2; exit 2; fi
	@$(BIN)/score2audio master "$(MIX)" $(MASTER_ARGS)

meter: setup
	@if [ -z "$(FILES)" ]; then echo 'usage: make meter FILES="a.wav b.flac"' >&2; exit 2; fi
	@$(BIN)/score2audio meter $(METER_ARGS) $(FILES)

setup: system-deps $(VENV)/.installed

system-deps:
	@PYTHON=$(PYTHON) scripts/ensure-system-deps.sh

# the venv is (re)built when the package's requirements change
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Setting up $(VENV) (first run only)…"
	@$(BIN)/python -m pip install -e ".[test]" > $(VENV)/pip.log 2>&1 \
		|| { cat $(VENV)/pip.log >&2; echo "pip install failed (log: $(VENV)/pip.log)" >&2; exit 1; }
	@touch $@

# system tools for the tests, then the Python ones (pyproject's [test] extra: pytest,
# hypothesis, dask, import-linter) in case the venv was set up before they were added
test-deps: setup
	@PYTHON=$(PYTHON) scripts/ensure-system-deps.sh --test
	@$(BIN)/python -c "import hypothesis, distributed, importlinter" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[test]"

# the import rules (pyproject.toml's [tool.importlinter]) first: quick, and they name the break
test: setup test-deps
	@$(BIN)/lint-imports
	@$(BIN)/python -m pytest -q

# end to end beside fluidsynth and MuseScore: times per stage, real-time factor, peak memory
# (never measured by the tests); bench-master times the mastering chain alone per preset
bench: setup
	@PYTHON=$(PYTHON) scripts/ensure-system-deps.sh --bench
	@$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

bench-master: setup
	@$(BIN)/python benchmarks/master_chain.py $(BENCH_ARGS)

# note-by-note agreement with MuseScore 3's playback (needs mscore3; not part of the tests)
agreement: setup
	@$(BIN)/python scripts/agreement.py $(AGREEMENT_ARGS)

# every score in a folder through `score2audio perform`: a line per file and a summary
corpus: setup
	@if [ -z "$(CORPUS)" ]; then echo "usage: make corpus CORPUS=path/to/folder" >&2; exit 2; fi
	@$(BIN)/python scripts/corpus.py "$(CORPUS)" $(CORPUS_ARGS)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache *.egg-info
