"""autospec inside PETSc: the learned (or Chebyshev) polynomial preconditioner for ``KSPCG``.

Optional: needs petsc4py (and mpi4py), e.g. Debian's ``python3-petsc4py-real`` (``make test-petsc``
sets it up). Everything runs on a PETSc ``Mat`` distributed over its communicator; nothing is
gathered to one rank:

* :func:`lanczos` — the probe through ``Mat.mult``: m Lanczos steps with full reorthogonalisation,
  the basis kept as each rank's rows, each Gram–Schmidt pass one global reduction (an ``Allreduce``
  of the j coefficients), so 3 reductions per step. The tiny tridiagonal is the same on every rank.
* :func:`set_preconditioner` — puts the polynomial on a user's ``KSP``: a Python ``PC`` (petsc4py's
  ``PCShell``) that runs the recurrence with the ``Mat``'s own ``mult`` and no reduction at all; or,
  with ``native=True`` and a polynomial that is a Chebyshev polynomial on an interval (method
  ``"chebyshev"``, or the learned engine's choice when it chose a Chebyshev candidate), PETSc's own
  ``KSPCHEBYSHEV`` on that interval as a ``PCKSP`` (``-ksp_chebyshev_eigenvalues``).
* :func:`solve` — ``KSPCG`` with one of ``"cg"``, ``"chebyshev"``, ``"autospec"``; returns the
  solution ``Vec`` and a :class:`PetscInfo` with the outer iterations, the products with A and the
  global reductions of the solve (PETSc's event counts: dot products and norms).

    mpiexec -n 2 python -c "import autospec.petsc as ap; ..."   # see tests/test_petsc.py
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from autospec.core.intervals import chebyshev_bounds
from autospec.core.probe import BREAKDOWN_RTOL, Probe
from autospec.core.recurrences import ChebyshevBasis, ThreeTerm, chebyshev_three_term
from autospec.core.results import Result
from autospec.errors import InputValueError
from autospec.learned import DEFAULT_ENGINES, load_for
from autospec.linsys.preconditioners import check_positive_probe, polynomial_is_safe
from autospec.matrices.gallery import MissingDependencyError

METHODS = ("cg", "chebyshev", "autospec")
# PETSc events that are one global reduction each (a dot product or a norm) on a parallel Vec
REDUCTION_EVENTS = ("VecDot", "VecTDot", "VecNorm", "VecMDot", "VecMTDot", "VecDotNorm2")
FALLBACK = "learned polynomial not positive on [0, 1.05*upper] or non-finite; used Chebyshev (ritz)"
_DEBIAN_PETSC = "/usr/lib/petscdir/petsc3.18/x86_64-linux-gnu-real"


def petsc():
    """The ``petsc4py.PETSc`` module (initialised), or a clear error naming how to install it."""
    if not os.environ.get("PETSC_DIR") and not os.path.isdir("/usr/lib/petsc") and os.path.isdir(_DEBIAN_PETSC):
        os.environ["PETSC_DIR"] = _DEBIAN_PETSC  # Debian's petsc4py finds its build through PETSC_DIR
    debian = os.path.join(os.environ.get("PETSC_DIR", _DEBIAN_PETSC), "lib", "python3", "dist-packages")
    if os.path.isdir(debian) and debian not in sys.path:  # what Debian's petsc4py.pth adds at start-up
        sys.path.append(debian)
    try:
        from petsc4py import PETSc
    except (ImportError, ValueError) as exc:  # ValueError: a petsc4py built for NumPy 1.x under NumPy 2
        raise MissingDependencyError(
            f"autospec.petsc needs an importable petsc4py ({type(exc).__name__}: {exc}): apt-get install "
            "python3-petsc4py-real python3-mpi4py openmpi-bin, then a venv with --system-site-packages and "
            "numpy<2 (`make test-petsc` builds .venv-petsc), or pip install petsc4py"
        ) from exc
    return PETSc


def matrix_from_scipy(A, comm=None):
    """A PETSc ``MATAIJ`` with this rank's block of rows of the SciPy sparse matrix ``A`` (every rank
    passes the same ``A``; PETSc's default row split). For distributed assembly build the ``Mat``
    yourself: everything else here takes any ``Mat``."""
    import scipy.sparse as sp

    PETSc = petsc()
    comm = PETSc.COMM_WORLD if comm is None else comm
    A = sp.csr_matrix(A, dtype=np.float64)
    n = A.shape[0]
    mat = PETSc.Mat().create(comm=comm)
    mat.setSizes(((PETSc.DECIDE, n), (PETSc.DECIDE, n)))
    mat.setType(PETSc.Mat.Type.AIJ)
    mat.setUp()
    start, end = mat.getOwnershipRange()
    local = A[start:end]
    mat.setPreallocationCSR((local.indptr.astype(PETSc.IntType), local.indices.astype(PETSc.IntType), local.data))
    mat.assemble()
    return mat


def vector(mat, values=None):
    """A ``Vec`` laid out as ``mat``'s columns, holding this rank's part of the global ``values``."""
    v = mat.createVecRight()
    if values is not None:
        start, end = v.getOwnershipRange()
        v.setArray(np.asarray(values, dtype=np.float64)[start:end])
    return v


def _allreduce(comm, values: np.ndarray) -> np.ndarray:
    mpi = comm.tompi4py()
    if mpi.Get_size() == 1:
        return values
    out = np.empty_like(values)
    mpi.Allreduce(values, out)
    return out


def _start_vector(v, seed: int, kind: str) -> np.ndarray:
    """This rank's slice of a global seeded vector, the same for any split of the rows. ``"counter"``:
    uniform on [-½, ½] from PCG64, which draws one 64-bit word per double, so rank r jumps ahead by
    its first row (O(local) work). ``"torch"``: the Gaussian start of :func:`autospec.lanczos`
    (every rank draws all n numbers and keeps its rows: O(n) per rank; to reproduce the library)."""
    start, end = v.getOwnershipRange()
    if kind == "torch":
        full = torch.randn(v.getSize(), 1, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
        return full[start:end, 0].numpy().copy()
    if kind != "counter":
        raise InputValueError(f"start must be 'counter' or 'torch', got {kind!r}")
    bits = np.random.PCG64(int(seed))
    bits.advance(start)
    return np.random.Generator(bits).random(end - start) - 0.5


def lanczos(mat, steps: int = 50, seed: int = 0, start: str = "counter") -> Probe:
    """The m-step Lanczos probe of the symmetric ``mat`` (as :func:`autospec.lanczos`: Ritz values,
    residual norms, the safe upper bound ``θ_max + β_m``, Gauss weights, ``size = n``), computed
    through ``mat.mult`` with each rank holding only its rows of the basis. ``probe.reductions``
    counts the global reductions it spent (3 per step). ``start``: see :func:`_start_vector`."""
    if int(steps) < 1:
        raise InputValueError(f"probe needs at least one Lanczos step, got steps={steps}")
    comm = mat.getComm()
    n = mat.getSize()[0]
    m = min(int(steps), n)
    x, y = mat.createVecs()
    local = x.getLocalSize()
    Q = np.empty((m, local))
    q = _start_vector(x, seed, start)
    reductions = 1
    Q[0] = q / np.sqrt(_allreduce(comm, np.array([q @ q]))[0])
    alphas, betas, scale, matvecs = [], [], 0.0, 0
    for j in range(m):
        x.setArray(Q[j])
        mat.mult(x, y)
        matvecs += 1
        w = y.getArray(readonly=True).copy()
        basis = Q[: j + 1]
        h = _allreduce(comm, basis @ w)  # q_jᵀ A q_j is the last coefficient of the first pass
        alphas.append(float(h[-1]))
        w -= basis.T @ h
        h2 = _allreduce(comm, np.append(basis @ w, w @ w))  # second pass, and ‖w‖² before it
        w -= basis.T @ h2[:-1]
        beta = float(np.sqrt(max(h2[-1] - h2[:-1] @ h2[:-1], 0.0)))  # ‖w‖ after the pass, Pythagoras
        reductions += 2
        scale = max(scale, abs(alphas[-1]) + beta)
        if j == m - 1 or beta <= BREAKDOWN_RTOL * scale:
            betas.append(0.0 if beta <= BREAKDOWN_RTOL * scale else beta)
            break
        betas.append(beta)
        Q[j + 1] = w / beta
    k = len(alphas)
    T = np.diag(alphas) + np.diag(betas[:-1], 1) + np.diag(betas[:-1], -1)
    T = comm.tompi4py().bcast(T, root=0)  # the same tridiagonal, bit for bit, on every rank
    theta, S = np.linalg.eigh(T)
    beta_m = betas[-1]
    t = torch.from_numpy
    probe = Probe(ritz=t(theta), residuals=t(beta_m * np.abs(S[-1])), upper=torch.tensor(theta[-1] + beta_m),
                  lower=torch.tensor(theta[0]), steps=k, matvecs=matvecs, weights=t(S[0] ** 2), size=n)
    probe.reductions = reductions
    return probe


@dataclass
class Polynomial:
    """``M = p(A/s)/s`` for a PETSc ``Mat``: the coefficients, the probe, and the interval ``[a, b]``
    (A's units) when ``p`` is the Chebyshev polynomial of one (then ``native=True`` can use it)."""

    poly: ThreeTerm | ChebyshevBasis
    scale: float
    probe: Probe
    method: str
    interval: tuple[float, float] | None = None
    fallback: str | None = None

    @property
    def degree(self) -> int:
        return self.poly.degree


def _chebyshev_interval(poly, scale: float) -> tuple[float, float] | None:
    """``[a, b]`` when ``poly`` is the Chebyshev three-term polynomial on ``[a/s, 1]`` (``c_0 = 2/(a/s + 1)``)."""
    if not isinstance(poly, ThreeTerm):
        return None
    a = 2.0 / float(poly.c0) - 1.0
    if not 0.0 < a < 1.0:
        return None
    ref = chebyshev_three_term(torch.tensor(a, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64), poly.degree)
    if torch.allclose(ref.flat(), poly.flat().double(), rtol=1e-10, atol=1e-12):
        return a * scale, scale
    return None


def polynomial(mat, method: str = "autospec", *, engine=None, degree: int | None = None,
               probe_steps: int | None = None, bounds: str = "ritz", seed: int = 0, start: str = "counter") -> Polynomial:
    """Probe ``mat`` (distributed Lanczos) and build its polynomial preconditioner: ``"chebyshev"``
    (``degree`` default 10, ``probe_steps`` 50, ``bounds`` as :func:`autospec.chebyshev_preconditioner`)
    or ``"autospec"`` (the learned engine; its own degree and probe steps; the safeguard falls back
    to Chebyshev ``ritz`` as :func:`autospec.solve` does). ``start``: the probe's start vector
    (:func:`lanczos`; ``"torch"`` gives the polynomial :func:`autospec.solve` builds)."""
    if method not in ("chebyshev", "autospec"):
        raise InputValueError(f"method must be 'chebyshev' or 'autospec' for a polynomial, got {method!r}")
    learned = None
    if method == "autospec":
        learned = load_for(engine, "linsys", "method='autospec' of autospec.petsc")
        if degree is not None and degree != learned.degree:
            raise InputValueError(f"degree={degree} disagrees with engine {learned.name!r} (degree {learned.degree})")
        degree, probe_steps = learned.degree, probe_steps or learned.probe_steps
    degree, probe_steps = degree or 10, probe_steps or 50
    probe = lanczos(mat, probe_steps, seed, start)
    check_positive_probe(probe)
    fallback = None
    if learned is not None:
        poly, scale = learned.coefficients_from_probe(probe)
        scale = float(scale)
        if not polynomial_is_safe(poly, upper=float(probe.upper) / scale):
            fallback, bounds = FALLBACK, "ritz"
    if learned is None or fallback:
        a, scale = chebyshev_bounds(probe, bounds)
        poly = chebyshev_three_term(torch.tensor(a / scale, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64),
                                    degree)
    return Polynomial(poly, float(scale), probe, method, _chebyshev_interval(poly, float(scale)), fallback)


class PolynomialShell:
    """petsc4py ``PC`` context (``PCPYTHON``, petsc4py's ``PCShell``): ``y = p(A/s) x / s`` by the
    recurrence, ``degree`` products with the ``Mat`` and no global reduction."""

    def __init__(self, poly: Polynomial):
        self.p = poly
        self.mat = None

    def setUp(self, pc):
        self.mat = pc.getOperators()[0]
        self.work = [self.mat.createVecRight() for _ in range(4)]

    def apply(self, pc, x, y):
        if isinstance(self.p.poly, ThreeTerm):
            self._three_term(x, y)
        else:
            self._chebyshev_basis(x, y)
        y.scale(1.0 / self.p.scale)

    def _three_term(self, x, y):
        poly, s = self.p.poly, self.p.scale
        d, rho, t = self.work[:3]
        x.copy(d)
        d.scale(float(poly.c0))
        d.copy(y)
        x.copy(rho)
        for alpha, beta in zip(poly.alpha.tolist(), poly.beta.tolist()):
            self.mat.mult(d, t)
            rho.axpy(-1.0 / s, t)  # ρ ← ρ − (A/s) d
            d.scale(alpha)
            d.axpy(beta, rho)
            y.axpy(1.0, d)

    def _chebyshev_basis(self, x, y):
        poly, s = self.p.poly, self.p.scale
        theta, delta = float(poly.a + poly.b) / 2, float(poly.b - poly.a) / 2
        c = poly.c.tolist()
        prev, cur, nxt = self.work[:3]
        x.copy(y)
        y.scale(c[0])
        if len(c) == 1:
            return
        x.copy(prev)
        self.mat.mult(x, cur)  # w_1 = ℓ(X) z = (A z/s − θ z)/δ
        cur.scale(1.0 / (s * delta))
        cur.axpy(-theta / delta, x)
        y.axpy(c[1], cur)
        for ck in c[2:]:
            self.mat.mult(cur, nxt)  # w_{k+1} = 2 ℓ(X) w_k − w_{k−1}
            nxt.scale(2.0 / (s * delta))
            nxt.axpy(-2.0 * theta / delta, cur)
            nxt.axpy(-1.0, prev)
            y.axpy(ck, nxt)
            prev, cur, nxt = cur, nxt, prev


def set_preconditioner(ksp, method: str = "autospec", *, native: bool = False, **kwargs) -> Polynomial:
    """Give ``ksp`` (its operators set) the polynomial preconditioner of its operator: a Python ``PC``
    running the recurrence, or (``native=True``) PETSc's ``KSPCHEBYSHEV`` with ``degree + 1``
    iterations on the polynomial's interval inside ``PCKSP`` (raises when the polynomial has no
    interval). ``kwargs`` go to :func:`polynomial`."""
    PETSc = petsc()
    mat = ksp.getOperators()[0]
    poly = polynomial(mat, method, **kwargs)
    pc = ksp.getPC()
    if not native:
        pc.setType(PETSc.PC.Type.PYTHON)
        pc.setPythonContext(PolynomialShell(poly))
        return poly
    if poly.interval is None:
        raise InputValueError(f"the {method} polynomial here is not a Chebyshev polynomial on an interval "
                              "(the engine chose a minimax candidate): use native=False")
    pc.setType(PETSc.PC.Type.KSP)
    inner = pc.getKSP()
    prefix = f"autospec_cheb{id(inner)}_"  # our own inner KSP: the user's prefixes stay as they are
    inner.setOptionsPrefix(prefix)
    inner.setType(PETSc.KSP.Type.CHEBYSHEV)
    inner.getPC().setType(PETSc.PC.Type.NONE)
    inner.setNormType(PETSc.KSP.NormType.NONE)  # no reduction inside the preconditioner
    inner.setTolerances(max_it=poly.degree + 1)  # x_k = p_{k-1}(A) b from x_0 = 0: degree d needs d + 1 steps
    opts = PETSc.Options(prefix)  # petsc4py 3.18 has no KSPChebyshevSetEigenvalues: through the options
    opts["ksp_chebyshev_eigenvalues"] = "{:.17g},{:.17g}".format(*poly.interval)
    opts["ksp_convergence_test"] = "skip"
    inner.setFromOptions()
    for key in ("ksp_chebyshev_eigenvalues", "ksp_convergence_test"):
        opts.delValue(key)
    return poly


@dataclass(kw_only=True)
class PetscInfo(Result):
    """What a PETSc solve cost (the :class:`Result` fields, ``rel_residual`` the true one):
    outer iterations, products with A (probe included), the global reductions PETSc counted in the
    KSP solve (``reductions``; ``probe_reductions`` beside it) and the MPI reductions its logging
    saw (0 on one rank, where none is needed)."""

    outer_iters: int = 0
    rel_residual: float = float("nan")
    reductions: int = 0
    probe_reductions: int = 0
    mpi_reductions: int = 0
    degree: int = 0
    interval: tuple[float, float] | None = None
    events: dict = field(default_factory=dict)

    @property
    def iterations(self) -> int:
        return self.outer_iters


def _counts(PETSc) -> dict:
    names = (*REDUCTION_EVENTS, "MatMult", "KSPSolve")
    return {name: PETSc.Log.Event(name).getPerfInfo() for name in names}


def solve(mat, b, method: str = "autospec", *, rtol: float = 1e-8, maxiter: int | None = None, native: bool = False,
          **kwargs):
    """``KSPCG`` on ``mat x = b`` (``b`` a ``Vec``) stopping on the unpreconditioned residual
    ``‖b − Ax‖ <= rtol‖b‖``, with no preconditioner (``"cg"``) or a polynomial (``"chebyshev"``,
    ``"autospec"``; ``native`` and ``kwargs`` as :func:`set_preconditioner`); returns ``(x, PetscInfo)``."""
    import time

    PETSc = petsc()
    if method not in METHODS:
        raise InputValueError(f"method must be one of {METHODS}, got {method!r}")
    PETSc.Log.begin()
    start = time.perf_counter()
    before = _counts(PETSc)
    ksp = PETSc.KSP().create(comm=mat.getComm())
    ksp.setOperators(mat)
    ksp.setType(PETSc.KSP.Type.CG)
    ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
    ksp.setTolerances(rtol=rtol, atol=0.0, max_it=maxiter or 10 * mat.getSize()[0])
    poly = None
    if method == "cg":
        ksp.getPC().setType(PETSc.PC.Type.NONE)
    else:
        poly = set_preconditioner(ksp, method, native=native, **kwargs)
    ksp.setUp()
    setup = _counts(PETSc)
    x = mat.createVecRight()
    ksp.solve(b, x)
    after = _counts(PETSc)
    seconds = time.perf_counter() - start
    r = b.duplicate()
    mat.mult(x, r)
    r.aypx(-1.0, b)
    rel = r.norm() / b.norm()
    events = {k: int(after[k]["count"] - setup[k]["count"]) for k in after}
    info = PetscInfo(
        method=method, outer_iters=ksp.getIterationNumber(), converged=ksp.getConvergedReason() > 0,
        rel_residual=float(rel), matvecs=int(after["MatMult"]["count"] - before["MatMult"]["count"]),
        reductions=sum(events[k] for k in REDUCTION_EVENTS),
        probe_reductions=poly.probe.reductions if poly else 0,
        mpi_reductions=int(after["KSPSolve"]["numReductions"] - setup["KSPSolve"]["numReductions"]),
        degree=poly.degree if poly else 0, seconds=seconds, fallback=poly.fallback if poly else None,
        interval=poly.interval if poly else None, events=events)
    ksp.destroy()
    return x, info
