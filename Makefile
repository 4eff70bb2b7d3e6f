# Two commands do all the set-up:
#   make demo   install (once) and run the whole pipeline on the demo corpus
#   make test   install (once) and run the test suite (doctests included)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_run

.PHONY: install demo test lint bench clean-demo bench-corpus bench-accuracy

$(STAMP): setup.py constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	DEMO_DIR=$(DEMO_DIR) PY=$(PY) bash recipes/demo/run.sh

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean-demo:
	rm -rf $(DEMO_DIR)

# The speech-synthesizer benchmark corpus (4.9 h of audio, ~5 min on
# two cores): installs espeak-ng, MBROLA, flite and festival voices
# through apt (needs root or sudo), then builds the corpus.
BENCH_CORPUS ?= bench_data/tts_corpus
bench-corpus: $(STAMP)
	bash bench/install_tts.sh
	$(PY) bench/tts_corpus.py --out $(BENCH_CORPUS)

# The accuracy tables of docs/benchmarks.md: prepares the benchmark corpus
# (8 kHz, 30,000 test trials) and trains + scores every variant of
# bench/accuracy.py at the CPU budget (resumable; see docs/benchmarks.md).
BENCH_PREP ?= bench_data/tts8k
bench-accuracy: $(STAMP)
	$(PY) data_prep.py --data_folder $(BENCH_CORPUS) \
	    --prep_folder $(BENCH_PREP) --prep_workers 2 --num_trials 30000 \
	    --cal_speakers 0
	$(PY) bench/accuracy.py --prep_folder $(BENCH_PREP) \
	    --voices $(BENCH_CORPUS)/voices.json --out bench_data/accuracy
