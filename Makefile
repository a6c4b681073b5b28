# rnnedge: the two set-up commands are `make demo` and `make test` (each creates the environment first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= artifacts/watch

.PHONY: setup demo test bench bench-cost cost-fit bench-f32 bench-firmware bench-streaming lint fuzz clean

$(VENV)/.installed: pyproject.toml train/bundled/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[train,dev,scale]' -e ./train/bundled
	touch $@

setup: $(VENV)/.installed

## train a GRU on the bundled smartwatch data, export every artifact (float32 and int8 weights), stream
## the held-out recordings through ONNX Runtime and the runtime, print the parity report and task metric
demo: setup
	$(VENV)/bin/rnnedge train watch --out $(OUT)
	$(VENV)/bin/rnnedge export $(OUT)/model.pt --data watch --precision f32,int8w,int8 --out $(OUT)

## the suite on up to 4 cores (pytest-xdist), each test file on one worker so its shared fixtures are built once;
## TEST_ARGS="-n 0" runs it in one process
TEST_ARGS ?= -n auto --maxprocesses=4 --dist loadfile
test: setup
	$(PY) -m pytest -q $(TEST_ARGS)

## rnnedge against PyTorch, ONNX Runtime and LiteRT (benchmarks/peers.py; LiteRT runs in its own venv,
## artifacts/bench-venv, created on first use): one markdown table, each workload against the compute floor and
## issue 15's targets (met / missed, with figures), JSON in artifacts/bench/.
## BENCH_ARGS="--quick" for a smoke run; the older benches: make bench-f32 bench-firmware bench-streaming
## Then the firmware cost table (bench-cost): instructions per step under QEMU, flash and RAM, per target x precision.
BENCH_ARGS ?=
bench: setup
	$(PY) -m benchmarks.peers $(BENCH_ARGS)
	$(PY) -m benchmarks.cost_table $(COST_ARGS)

## benchmarks/cost_table.py alone (COST_ARGS="--save" also writes benchmarks/results/cost_table.{json,md})
COST_ARGS ?=
bench-cost: setup
	$(PY) -m benchmarks.cost_table $(COST_ARGS)

## re-measure varied shapes under QEMU and refit runtime/cost_model.py's coefficients (runtime/cost_coefficients.py)
cost-fit: setup
	$(PY) -m benchmarks.cost_fit

bench-f32: setup
	$(PY) -m benchmarks.bench_f32

bench-firmware: setup
	$(PY) -m benchmarks.bench_firmware

bench-streaming: setup
	$(PY) -m benchmarks.bench_streaming

## mutation figures for the closing note: 100,000 mutated weight files, 100,000 mutated vectors files and every
## single-bit header flip of the base files (150,272) through the readers (tests/fuzz); one core, niced, about
## half an hour; exit 1 on any failure; figures in artifacts/fuzz.json. FUZZ_ARGS="--seed 3 ..." to vary
FUZZ_ARGS ?= --weights 100000 --vectors 100000 --seed 0 --header-flips
fuzz: setup
	mkdir -p artifacts
	nice $(PY) -m tests.fuzz $(FUZZ_ARGS) --json artifacts/fuzz.json

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) artifacts .pytest_cache
