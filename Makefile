# Every target sets up .venv first (idempotent), so each command works on an empty machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup train test test-all test-petsc evaluate bench bench-scale clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 is the CPU build on these machines; a looser pin pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test,gallery,train,plots,gpu]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(PY) train.py experiment=linsys_d10

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m ""

# autospec.petsc (issue 19) on Debian's petsc4py (PETSc 3.18, Open MPI): it is built for the system
# Python and NumPy 1.x, so it gets its own venv that sees the system site-packages, with numpy<2.
PETSC_VENV  := .venv-petsc
PETSC_PY    := $(PETSC_VENV)/bin/python
PETSC_STAMP := $(PETSC_VENV)/.installed
DEBIAN_PETSC4PY := /usr/lib/petscdir/petsc3.18/x86_64-linux-gnu-real/lib/python3/dist-packages

$(PETSC_STAMP): pyproject.toml
	test -d $(DEBIAN_PETSC4PY)/petsc4py && command -v mpiexec >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-petsc4py-real \
	  python3-mpi4py openmpi-bin; }
	test -x $(PETSC_PY) || /usr/bin/python3 -m venv --system-site-packages $(PETSC_VENV)
	$(PETSC_PY) -m pip install --quiet "torch==2.13.0"
	$(PETSC_PY) -m pip install --quiet "numpy<2" -e ".[test,gallery]"
	touch $(PETSC_STAMP)

test-petsc: $(PETSC_STAMP)
	OMP_NUM_THREADS=1 $(PETSC_PY) -m pytest -q -rs tests/test_petsc.py

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

bench-scale: $(STAMP)
	$(PY) benchmarks/bench_scale.py

clean:
	rm -rf $(VENV) $(PETSC_VENV) outputs multirun .pytest_cache
