# Two commands on a fresh machine with only Python 3.11 and make: `make run`, `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml requirements-peer.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# the hftbacktest peer benchmark's pins, without their resolver conflict (see requirements-peer.txt)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-peer.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/router-tuner simulate

# The suite runs on two processes (pytest-xdist): 12-13 minutes on one core, 7-9.5 on the two CI has. The numba kernels
# are compiled and cached first, so the two processes do not both compile them into the same cache files. Hypothesis
# draws from one fixed seed here, so CI's verdict is reproducible; `pytest` run directly draws new examples each time
# (how edge cases are found: each one found becomes an @example).
test: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -c 'from router_tuner.tuner.learners import linucb_kernel, structured_kernel, thompson_kernel'
	$(BIN)/python -m pytest -n 2 --hypothesis-seed=0; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo 'make test: pytest collected no tests' >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) var build *.egg-info
