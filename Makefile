# Two commands matter on a fresh machine: `make demo` and `make test` (each does its own set-up).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := build/demo/taxi-fare
MLOPS := $(abspath $(BIN)/mlops)
# MLServer lives in its own virtualenv (protobuf conflict with kubeflow-katib), cached by hash.
export MLOPS_SERVING_ENVS_DIR ?= $(HOME)/.cache/mlops/serving-envs

.PHONY: setup system-deps demo demo-new-data demo-stop demo-clean test test-all test-python lint bench mutation clean

$(BIN)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[all,test]'
	$(BIN)/python -m compileall -q pyhelpers  # bytecode even where PYTHONDONTWRITEBYTECODE is set: quick no-op reruns
	touch $@

setup: $(BIN)/.installed

## demo: prepare build/demo/taxi-fare (git + DVC) and run both lines on the embedded defaults
demo: setup
	examples/prepare_demo.sh $(DEMO)
	cd $(DEMO) && $(MLOPS) line data --local
	cd $(DEMO) && $(MLOPS) line deploy --local

## demo-new-data: a new data batch arrives; run the lines again
demo-new-data: setup
	examples/prepare_demo.sh $(DEMO)
	examples/new_data.sh $(DEMO)
	cd $(DEMO) && $(MLOPS) line data --local
	cd $(DEMO) && $(MLOPS) line deploy --local

## demo-stop: stop the demo's local model server
demo-stop:
	cd $(DEMO) && $(MLOPS) deploy stop

demo-clean:
	-cd $(DEMO) && $(MLOPS) deploy stop
	rm -rf $(DEMO)

## system-deps: the Debian packages the tests need (installed as root, else the exact command to run)
system-deps:
	@mkdir -p build
	.ci/install-system-deps > build/system-deps.env

# Test files are spread over this many workers (pytest-xdist; a file's tests stay together, so its
# module fixtures start once): most tests wait on servers and subprocesses, 2 halve the run on 2 cores.
TEST_WORKERS ?= 2

## test: set-up (system packages, venv), lint, then every test except the slow ones
test: system-deps setup lint
	set -a && . build/system-deps.env && set +a && $(BIN)/python -m pytest -m "not slow" -q -n $(TEST_WORKERS) --dist loadfile

## test-all: every test, slow ones included
test-all: system-deps setup lint
	set -a && . build/system-deps.env && set +a && $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: system-deps setup
	$(BIN)/ruff check pyhelpers tests bench examples
	bash tests/groovy/lint.sh

bench: setup
	$(BIN)/python bench/run.py

## mutation: test strength of the core decision code (mutmut; mutation.toml), reported, not enforced.
## Per target: mutants total / killed / survived, the score and each surviving mutant (~30 min on 2 cores).
## One target: make mutation MUTATION_TARGETS=gate
mutation: setup
	$(BIN)/python bench/mutation.py $(MUTATION_TARGETS)

clean:
	rm -rf build $(VENV)
