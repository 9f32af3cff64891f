# Every target sets up .venv first (idempotent), so each command works on an empty machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup train test test-all evaluate bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is the CPU build on these machines; a looser pin pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test,gallery,train,plots]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(PY) train.py experiment=linsys_d10

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m ""

evaluate: $(STAMP)
	$(PY) evaluate.py

bench: $(STAMP)
	$(PY) benchmarks/bench_linsys.py
	$(PY) benchmarks/bench_cg_reference.py
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_scipy_cg.py
	$(PY) benchmarks/bench_eigfilter_engine.py
	$(PY) benchmarks/bench_matfun_engine.py
	$(PY) benchmarks/bench_matfun.py
	$(PY) benchmarks/bench_evaluate.py
	$(PY) benchmarks/bench_eigen.py
	$(PY) benchmarks/bench_matfun_kernels.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
