"""The bad-input battery (issue 18, points 3 and 4): every case gets an ``AutospecError`` subclass
whose message names the problem, in under a second, without a large allocation first — and
nothing given is silently ignored."""

from __future__ import annotations

import gzip
import json
import resource
import shutil
import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import autospec
from autospec import errors, matfun
from autospec.engine.artifact import shipped_dir

from conftest import poisson2d

A = poisson2d(6)  # n = 36, SPD
B = np.ones(36)
A_T16 = torch.from_numpy(A.toarray()).bfloat16()
B_T16 = torch.ones(36, dtype=torch.bfloat16)
NAN_OP = spla.LinearOperator((36, 36), matvec=lambda v: np.full_like(v, np.nan), dtype=np.float64)
INDEFINITE = sp.diags(np.linspace(-1, 2, 36)).tocsr()
MEMORY_LIMIT = 300 * 2**20  # bytes: no case may allocate more than this on its way to the error


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tampered copies of a shipped artifact and Matrix Market files with lying headers."""
    tmp = tmp_path_factory.mktemp("bad")
    src = shipped_dir() / "eigfilter-d15"
    meta = json.loads(src.with_suffix(".json").read_text())

    def artifact(name, **changes):
        shutil.copy(src.with_suffix(".safetensors"), tmp / f"{name}.safetensors")
        record = {**meta, "weights": f"{name}.safetensors", **changes}
        (tmp / f"{name}.json").write_text(json.dumps(record))
        return tmp / f"{name}.json"

    header = "%%MatrixMarket matrix coordinate real general\n"
    (tmp / "entries.mtx").write_text(header + "100000000000 100000000000 1000000000000\n1 1 1.0\n")
    (tmp / "rows.mtx").write_text(header + "100000000000 100000000000 3\n1 1 1.0\n2 2 1.0\n3 3 1.0\n")
    (tmp / "dense.mtx").write_text("%%MatrixMarket matrix array real general\n100000 100000\n1.0\n")
    with gzip.open(tmp / "entries.mtx.gz", "wt") as f:
        f.write(header + "1000000 1000000 1000000000000\n1 1 1.0\n")
    return {
        "task_string": artifact("task_string", task="eigfilter"),
        "weights_number": artifact("weights_number", weights=5),
        "weights_elsewhere": artifact("weights_elsewhere", weights="../../etc/passwd"),
        "probe_steps_text": artifact("probe_steps_text", probe={"steps": "fifty"}),
        "engine_unknown_key": artifact("engine_unknown_key", engine={**meta["engine"], "colour": "blue"}),
        "task_bad_setting": artifact("task_bad_setting", task={**meta["task"], "degree": "fifteen"}),
        "mtx": tmp,
    }


def _mtx(name):
    return lambda f: autospec.read_matrix(f["mtx"] / name)


CASES = [
    # -- solve: arguments, each checked before any product --------------------------------------------
    ("solve-degree-str", lambda f: autospec.solve(A, B, method="chebyshev", degree="10"), errors.InputValueError, "degree must be an integer"),
    ("solve-degree-float", lambda f: autospec.solve(A, B, method="chebyshev", degree=2.5), errors.InputValueError, "degree must be an integer"),
    ("solve-degree-negative", lambda f: autospec.solve(A, B, method="chebyshev", degree=-1), errors.InputValueError, "degree must be >= 0"),
    ("solve-rtol-nan", lambda f: autospec.solve(A, B, method="chebyshev", rtol=float("nan")), errors.InputValueError, "rtol .*NaN"),
    ("solve-rtol-negative", lambda f: autospec.solve(A, B, method="cg", rtol=-1e-8), errors.InputValueError, "rtol must be >= 0"),
    ("solve-atol-str", lambda f: autospec.solve(A, B, method="cg", atol="legacy"), errors.InputValueError, "atol must be a real number"),
    ("solve-maxiter-float", lambda f: autospec.solve(A, B, method="cg", maxiter=10.5), errors.InputValueError, "maxiter must be an integer"),
    ("solve-probe-steps-zero", lambda f: autospec.solve(A, B, method="chebyshev", probe_steps=0), errors.InputValueError, "probe_steps must be >= 1"),
    ("solve-rng-str", lambda f: autospec.solve(A, B, method="cg", rng="0"), errors.InputValueError, "rng must be None, an integer seed or a numpy"),
    ("solve-rng-and-seed", lambda f: autospec.solve(A, B, method="cg", rng=1, seed=1), errors.InputValueError, "give rng= only"),
    ("solve-unknown-method", lambda f: autospec.solve(A, B, method="gmres"), errors.InputValueError, "unknown method"),
    ("solve-callback-not-callable", lambda f: autospec.solve(A, B, method="cg", callback=3), errors.InputTypeError, "callback must be callable"),
    ("solve-x0-mb-chebyshev", lambda f: autospec.solve(A, B, method="chebyshev", x0="Mb"), errors.InputValueError, "x0='Mb' is only"),
    ("solve-x0-shape", lambda f: autospec.solve(A, B, method="cg", x0=np.ones(5)), errors.InputValueError, "does not match"),
    # -- nothing silently ignored ------------------------------------------------------------------
    ("solve-engine-with-cg", lambda f: autospec.solve(A, B, method="cg", engine="linsys-cg-d10"), errors.InputValueError, "engine= is only used by method='autospec'"),
    ("solve-engine-with-chebyshev", lambda f: autospec.solve(A, B, method="chebyshev", engine="linsys-cg-d10"), errors.InputValueError, "engine= is only used"),
    ("solve-degree-with-cg", lambda f: autospec.solve(A, B, method="cg", degree=10), errors.InputValueError, "degree= is only used"),
    ("solve-M-with-chebyshev", lambda f: autospec.solve(A, B, method="chebyshev", M=np.eye(36)), errors.InputValueError, "M= is only used by method='cg'"),
    ("solve-degree-mismatches-engine", lambda f: autospec.solve(A, B, method="autospec", degree=5), errors.InputValueError, "degree=5 disagrees with engine"),
    ("solve-non-linsys-engine", lambda f: autospec.solve(A, B, method="autospec", engine="eigfilter-d15"), errors.InputValueError, "trained for task 'eigfilter"),
    ("preconditioner-non-linsys-engine", lambda f: autospec.load("eigfilter-d15").preconditioner(A), errors.InputValueError, "has no preconditioner"),
    ("preconditioner-indefinite", lambda f: autospec.load("linsys-cg-d10").preconditioner(INDEFINITE), errors.NotPositiveDefiniteError, "not positive definite"),
    ("preconditioner-nonsymmetric", lambda f: autospec.load("linsys-cg-d10").preconditioner(sp.triu(A).tocsr()), errors.NotSymmetricError, "not symmetric"),
    ("solve-indefinite-chebyshev", lambda f: autospec.solve(INDEFINITE, B, method="chebyshev"), errors.NotPositiveDefiniteError, "not positive definite"),
    # -- dtypes and operators ------------------------------------------------------------------------
    ("solve-bfloat16-chebyshev", lambda f: autospec.solve(A_T16, B_T16, method="chebyshev"), errors.InputTypeError, "bfloat16"),
    ("solve-bfloat16-autospec", lambda f: autospec.solve(A_T16, B_T16, method="autospec"), errors.InputTypeError, "bfloat16"),
    ("solve-bfloat16-cg", lambda f: autospec.solve(A_T16, B_T16, method="cg"), errors.InputTypeError, "bfloat16"),
    ("solve-nan-operator-cg", lambda f: autospec.solve(NAN_OP, B, method="cg"), errors.InputValueError, "non-finite"),
    ("solve-nan-operator-chebyshev", lambda f: autospec.solve(NAN_OP, B, method="chebyshev"), errors.InputValueError, "non-finite"),
    ("eigsh-nan-operator", lambda f: autospec.eigsh(NAN_OP, k=2), errors.InputValueError, "non-finite"),
    ("eigsh-bfloat16", lambda f: autospec.eigsh(A_T16, k=2), errors.InputTypeError, "bfloat16"),
    ("eigsh-rng-float", lambda f: autospec.eigsh(A, k=2, rng=0.5), errors.InputValueError, "rng must be None, an integer seed"),
    ("eigsh-engine-with-chfsi", lambda f: autospec.eigsh(A, k=2, method="chfsi", engine="eigfilter-d15"), errors.InputValueError, "engine= is only used by method='autospec'"),
    ("eigsh-degree-with-lanczos", lambda f: autospec.eigsh(A, k=2, method="lanczos", degree=10), errors.InputValueError, "degree= is only used"),
    ("eigsh-degree-mismatches-engine", lambda f: autospec.eigsh(A, k=2, method="autospec", degree=10), errors.InputValueError, "emits degree-15 filters"),
    ("eigsh-max-matvecs-float", lambda f: autospec.eigsh(A, k=2, max_matvecs=2.5), errors.InputValueError, "max_matvecs must be an integer"),
    # -- pcg (SciPy's signature) -------------------------------------------------------------------
    ("pcg-atol-none", lambda f: autospec.pcg(A, B, atol=None), errors.InputValueError, "atol must be a real number"),
    ("pcg-x0-unknown-string", lambda f: autospec.pcg(A, B, x0="Ma"), errors.InputValueError, "x0 must be an array, None or 'Mb'"),
    ("pcg-bfloat16", lambda f: autospec.pcg(A_T16, B_T16), errors.InputTypeError, "bfloat16"),
    ("pcg-M-shape", lambda f: autospec.pcg(A, B, M=np.eye(3)), errors.InputValueError, "preconditioner of shape"),
    # -- matfun ------------------------------------------------------------------------------------
    ("apply-huge-degree", lambda f: matfun.apply(A, B, degree=10**5), errors.InputValueError, "degree must be <= 4000"),
    ("apply-degree-str", lambda f: matfun.apply(A, B, degree="10"), errors.InputValueError, "degree must be an integer"),
    ("apply-tol-nan", lambda f: matfun.apply(A, B, tol=float("nan")), errors.InputValueError, "tol .*NaN"),
    ("apply-engine-with-chebyshev", lambda f: matfun.apply(A, B, engine="matfun-inv_sqrt-d20"), errors.InputValueError, "engine= is only used"),
    ("apply-degree-mismatches-engine", lambda f: matfun.apply(A, B, method="autospec", degree=10), errors.InputValueError, "has degree 20, the call asked for degree 10"),
    ("apply-rng-str", lambda f: matfun.apply(A, B, rng="1"), errors.InputValueError, "rng must be None, an integer seed"),
    ("inv-sqrt-tol-str", lambda f: matfun.inv_sqrt(np.eye(4), tol="1e-6"), errors.InputValueError, "tol must be a real number"),
    ("inv-sqrt-max-iters-float", lambda f: matfun.inv_sqrt(np.eye(4), max_iters=2.5), errors.InputValueError, "max_iters must be an integer"),
    ("inv-sqrt-engine-with-newton-schulz", lambda f: matfun.inv_sqrt(np.eye(4), engine="matfun-coupled-inv_sqrt"), errors.InputValueError, "engine= is only used"),
    ("preconditioner-rng-str", lambda f: autospec.load("linsys-cg-d10").preconditioner(A, rng="x"), errors.InputValueError, "rng must be None"),
    ("apply-bfloat16", lambda f: matfun.apply(A_T16, B_T16), errors.InputTypeError, "bfloat16"),
    # -- artifacts ---------------------------------------------------------------------------------
    ("load-empty-name", lambda f: autospec.load(""), errors.ArtifactError, "no engine artifact ''"),
    ("load-not-a-path", lambda f: autospec.load(3), errors.InputTypeError, "engine name or a path"),
    ("load-missing", lambda f: autospec.load("no-such-engine"), errors.ArtifactError, "no engine artifact"),
    ("artifact-task-is-a-string", lambda f: autospec.load(f["task_string"]), errors.ArtifactError, "malformed engine metadata .*task"),
    ("artifact-weights-is-a-number", lambda f: autospec.load(f["weights_number"]), errors.ArtifactError, "malformed engine metadata .*weights"),
    ("artifact-weights-elsewhere", lambda f: autospec.load(f["weights_elsewhere"]), errors.ArtifactError, "malformed engine metadata .*weights"),
    ("artifact-probe-steps-text", lambda f: autospec.load(f["probe_steps_text"]), errors.ArtifactError, "probe.steps"),
    ("artifact-engine-unknown-setting", lambda f: autospec.load(f["engine_unknown_key"]), errors.ArtifactError, "do not build"),
    ("artifact-task-bad-setting", lambda f: autospec.load(f["task_bad_setting"]), errors.ArtifactError, "engine metadata"),
    # -- Matrix Market headers that lie --------------------------------------------------------------
    ("mtx-claims-1e12-entries", _mtx("entries.mtx"), errors.InputValueError, "claims .* more than a file of"),
    ("mtx-claims-1e11-rows", _mtx("rows.mtx"), errors.InputValueError, "GiB, more than the .* available"),
    ("mtx-array-claims-1e10-entries", _mtx("dense.mtx"), errors.InputValueError, "claims .* more than a file of"),
    ("mtx-gz-claims-1e12-entries", _mtx("entries.mtx.gz"), errors.InputValueError, "claims .* more than a file of"),
]


@pytest.mark.parametrize("run, exc, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_named_project_error_fast_and_small(files, run, exc, message):
    assert issubclass(exc, errors.AutospecError)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(exc, match=message):
            run(files)
    finally:
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    assert seconds < 1.0, f"took {seconds:.2f} s"
    assert peak < MEMORY_LIMIT and grown < MEMORY_LIMIT, (peak, grown)
