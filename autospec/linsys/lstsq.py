"""``autospec.lstsq``: (ridge) least squares ``min_w ‖Xw − y‖² + μ‖w‖²`` for tall ``X (m × p)``.

Methods:

* ``"lsqr"`` — SciPy's LSQR on X (``damp = √μ``, ``atol = btol = rtol``);
* ``"sketch_precondition"`` — Blendenpik/LSRN: sketch ``SX`` (``d`` rows, default ``4p``), QR, LSQR
  on ``[X; √μ I] R⁻¹`` warm-started at the sketch-and-solve answer
  (:mod:`autospec.sketch.least_squares`);
* ``"sketch_solve"`` — the one-pass sketched solution (accurate to a ``1 + ε`` factor of the optimal
  residual, not to ``rtol``: ``info.converged`` says whether it happens to meet ``rtol``);
* ``"cg"``, ``"chebyshev"``, ``"autospec"`` — :func:`autospec.solve` on the normal equations
  ``(XᵀX + μI) w = Xᵀy`` (matrix-free: each product is one ``X·`` and one ``Xᵀ·``), stopped at
  ``‖Xᵀy − (XᵀX + μI)w‖ <= rtol‖Xᵀy‖``; ``"autospec"`` uses the learned engine ``engine``.

``info`` (:class:`autospec.sketch.LstsqInfo`): ``outer_iters``, ``matvecs`` (products of X or Xᵀ with a
vector, the sketch's passes included), ``converged``, ``rel_residual = ‖y − Xw‖/‖y‖``,
``normal_residual``, ``sketch``/``sketch_size`` and the normal-equation solve's own info as ``inner``.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.linalg import solve_triangular

from autospec.core.validate import seed_from
from autospec.errors import InputValueError
from autospec.kernels.sketch import KINDS, torch_generator
from autospec.linsys.solve import solve
from autospec.sketch.least_squares import (
    DataMatrix,
    NormalEquations,
    choose_sketch_size,
    lsqr_on,
    residuals,
    sketch_qr,
    timed_info,
)
from autospec.sketch.nystrom import check_mu

METHODS = ("lsqr", "sketch_precondition", "sketch_solve", "cg", "chebyshev", "autospec")
SKETCHED = ("sketch_precondition", "sketch_solve")
NORMAL = ("cg", "chebyshev", "autospec")


def lstsq(X, y, method: str = "sketch_precondition", *, mu: float = 0.0, rtol: float = 1e-8,
          maxiter: int | None = None, rng=None, sketch: str = "sparse_sign", sketch_size: int | None = None,
          engine=None, degree: int | None = None, probe_steps: int | None = None, scaling: str = "none"):
    """Solve ``min_w ‖Xw − y‖² + μ‖w‖²``; returns ``(w, info)`` (NumPy for NumPy/SciPy input, torch
    for torch input). ``rng`` (None: seed 0, an int seed or a NumPy Generator) seeds the sketch and the probe;
    ``sketch`` is ``"sparse_sign"`` (8 nonzeros per column), ``"gaussian"`` or ``"srht"``;
    ``degree``, ``probe_steps``, ``scaling`` and ``engine`` (when given; None: solve's defaults, the
    engine ``linsys-cg-d10``) go to :func:`autospec.solve` for the normal-equation methods. Bad input (unknown method, ``d < p``, ``μ < 0``, shapes that do not
    match, a wide X for a sketched method) raises ``InputValueError``/``InputTypeError``."""
    start = time.perf_counter()
    if method not in METHODS:
        raise InputValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if sketch not in KINDS:
        raise InputValueError(f"unknown sketch {sketch!r}; choose one of {KINDS}")
    mu = check_mu(mu)
    if not np.isfinite(rtol) or rtol < 0 or (maxiter is not None and int(maxiter) < 0):
        raise InputValueError(f"rtol and maxiter must be non-negative (got {rtol}, {maxiter})")
    data = DataMatrix(X)
    rhs = data.rhs(y)
    m, p = data.shape
    gen = torch_generator(seed_from(rng))  # None: seed 0, as every front door (a sketch operator alone draws fresh)
    if method in NORMAL:
        w, fields = _normal_equations(data, rhs, method, mu, rtol, maxiter, int(gen.initial_seed()),
                                      engine=engine, degree=degree, probe_steps=probe_steps, scaling=scaling)
    elif method == "lsqr":
        w, iters, converged = lsqr_on(data, rhs, mu, None, rtol, maxiter)
        fields = {"outer_iters": iters, "converged": converged}
    else:
        if m < p:
            raise InputValueError(f"{method} is for tall X (m >= p); got X of shape {data.shape}")
        d = choose_sketch_size(data, sketch_size, sketch)
        R, z0 = sketch_qr(data, rhs, mu, d, sketch, gen)
        fields = {"sketch": sketch, "sketch_size": d}
        if method == "sketch_solve":
            w = solve_triangular(R.cpu().numpy(), z0.cpu().numpy())
            fields["outer_iters"] = 0
        else:
            w, fields["outer_iters"], fields["converged"] = lsqr_on(data, rhs, mu, R, rtol, maxiter, z0)
    w = _as_tensor(w)
    info = timed_info(method, start, matvecs=data.matvecs, **fields)
    info.rel_residual, info.normal_residual = residuals(data, rhs, w, mu)
    if method == "sketch_solve":
        info.converged = info.normal_residual <= rtol
    return data.output(w.to(data.device) if data.torch_input else w), info


def _normal_equations(data: DataMatrix, rhs, method: str, mu: float, rtol: float, maxiter, seed: int, **settings):
    """``autospec.solve`` on ``(XᵀX + μI) w = Xᵀy``; matvecs are the data's (two per product)."""
    op = NormalEquations(data, mu)
    b = data.rmatmat(rhs.reshape(-1, 1)).reshape(-1)
    given = {k: v for k, v in settings.items() if v is not None and (k != "engine" or method == "autospec")}
    w, inner = solve(op, b, method=method, rtol=rtol, maxiter=maxiter, rng=seed, **given)
    data.matvecs = 1 + 2 * inner.matvecs  # Xᵀy, then one X· and one Xᵀ· per product (not the symmetry check)
    return w, {"outer_iters": inner.outer_iters, "converged": bool(inner.converged), "inner": inner}


def _as_tensor(w):
    return w if isinstance(w, torch.Tensor) else torch.from_numpy(np.asarray(w, dtype=np.float64))
