"""Random sparse SPD operators that look like SuiteSparse's, for training spectra.

Families (all seeded by a ``numpy.random.Generator``):

* ``fem`` — P1 stiffness ``K_ij = Σ_e c_e |e| ∇φ_i·∇φ_j`` on a jittered (optionally graded)
  Delaunay mesh of the unit square with Dirichlet boundary, element coefficients ``c_e``
  log-uniform over up to four decades; ``fem_mass`` adds ``σ·M`` (the P1 mass matrix);
* ``geometric`` / ``powerlaw`` — graph Laplacians ``L = D − W`` of a random geometric graph and a
  preferential-attachment graph, plus a small shift ``δ·mean(diag L)·I``;
* ``elasticity`` / ``diffusion`` — pyamg's 2-D linear elasticity (random E, ν) and rotated
  anisotropic diffusion stencils (random ε, θ);
* any of them with a random symmetric row scaling ``D A D`` (mixed physical units, as in the
  structural ``bcsstk`` matrices), and with or without Jacobi scaling ``D^{-1/2} A D^{-1/2}``.

None of the evaluation matrices is used; :func:`operator_spectrum` returns the exact eigenvalues
(dense ``eigvalsh``, so keep ``n`` ≲ 4096).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay, cKDTree

from autospec.errors import InputValueError

KINDS = ("fem", "fem_mass", "geometric", "powerlaw", "elasticity", "diffusion")
ROW_SCALED_FRACTION = 0.3
JACOBI_FRACTION = 0.5


def _mesh(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, triangles and the boundary mask of a jittered, possibly graded, grid of ~n interior points."""
    k = int(math.sqrt(n)) + 2
    x, y = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k))
    points = np.c_[x.ravel(), y.ravel()]
    interior = np.all((points > 0) & (points < 1), axis=1)
    points[interior] += rng.uniform(-0.35, 0.35, (int(interior.sum()), 2)) / (k - 1)
    if rng.random() < 0.5:
        points = points ** rng.uniform(1.0, 2.5)  # graded towards a corner
    return points, Delaunay(points).simplices, ~interior


def fem(rng: np.random.Generator, n: int, mass_shift: float = 0.0) -> sp.csr_matrix:
    """P1 stiffness (+ ``mass_shift``·mass) on a random mesh, Dirichlet boundary removed."""
    points, cells, boundary = _mesh(rng, n)
    contrast = math.log(10 ** rng.uniform(0, 4))
    coeff = np.exp(rng.uniform(0, contrast, len(cells))) if rng.random() < 0.7 else np.ones(len(cells))
    corners = points[cells]  # (E, 3, 2)
    edges = np.stack([corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], axis=2)  # (E, 2, 2)
    det = np.linalg.det(edges)
    ok = np.abs(det) > 1e-14
    cells, edges, det, coeff = cells[ok], edges[ok], det[ok], coeff[ok]
    area = np.abs(det) / 2
    reference = np.array([[-1.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    grads = np.linalg.solve(np.transpose(edges, (0, 2, 1)), np.broadcast_to(reference, (len(cells), 2, 3)))
    stiffness = (coeff * area)[:, None, None] * np.einsum("eki,ekj->eij", grads, grads)
    mass = area[:, None, None] / 12 * (np.ones((3, 3)) + np.eye(3))
    rows, cols = np.repeat(cells, 3, axis=1).ravel(), np.tile(cells, 3).ravel()
    shape = (len(points), len(points))
    A = sp.coo_matrix(((stiffness + mass_shift * mass).ravel(), (rows, cols)), shape=shape).tocsr()
    keep = np.flatnonzero(~boundary)
    return A[keep][:, keep].tocsr()


def graph_laplacian(rng: np.random.Generator, n: int, kind: str) -> sp.csr_matrix:
    """Shifted Laplacian of a random geometric (``geometric``) or preferential-attachment graph."""
    if kind == "geometric":
        pairs = cKDTree(rng.random((n, 2))).query_pairs(math.sqrt(rng.uniform(4, 12) / (math.pi * n)),
                                                         output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        w = np.ones(len(i)) if rng.random() < 0.5 else 10 ** rng.uniform(-1, 1, len(i))
    else:
        m = int(rng.integers(1, 4))
        degree = np.ones(n)
        src, dst = [], []
        for v in range(m + 1, n):
            chosen = rng.choice(v, size=m, replace=False, p=degree[:v] / degree[:v].sum())
            src += [v] * m
            dst += chosen.tolist()
            degree[chosen] += 1
            degree[v] += m
        i, j, w = np.array(src), np.array(dst), np.ones(len(src))
    W = sp.coo_matrix((w, (i, j)), shape=(n, n))
    W = (W + W.T).tocsr()
    L = sp.diags(np.asarray(W.sum(axis=1)).ravel()) - W
    return (L + 10 ** rng.uniform(-6, -1) * L.diagonal().mean() * sp.eye(n)).tocsr()


def elasticity(rng: np.random.Generator, n: int) -> sp.csr_matrix:
    import pyamg

    k = max(4, int(math.sqrt(n / 2)))
    A, _ = pyamg.gallery.linear_elasticity((k, k), E=10 ** rng.uniform(0, 5), nu=rng.uniform(0.1, 0.45))
    return A.tocsr()


def diffusion(rng: np.random.Generator, n: int) -> sp.csr_matrix:
    import pyamg

    k = max(4, int(math.sqrt(n)))
    stencil = pyamg.gallery.diffusion_stencil_2d(epsilon=10 ** rng.uniform(-4, 0), theta=rng.uniform(0, math.pi),
                                                 type=str(rng.choice(["FE", "FD"])))
    return pyamg.gallery.stencil_grid(stencil, (k, k), format="csr")


def random_operator(seed: int, kind: str | None = None, n_range: tuple[int, int] = (300, 2000)) -> tuple[str, sp.csr_matrix]:
    """``(name, A)``: a random SPD operator of ``kind`` (default: ``KINDS[seed % len(KINDS)]``)."""
    rng = np.random.default_rng(seed)
    kind = KINDS[seed % len(KINDS)] if kind is None else kind
    if kind not in KINDS:
        raise InputValueError(f"unknown operator kind {kind!r}; choose one of {KINDS}")
    n = int(np.exp(rng.uniform(math.log(n_range[0]), math.log(n_range[1]))))
    builders = {"fem": lambda: fem(rng, n), "fem_mass": lambda: fem(rng, n, 10 ** rng.uniform(-1, 3)),
                "geometric": lambda: graph_laplacian(rng, n, "geometric"),
                "powerlaw": lambda: graph_laplacian(rng, n, "powerlaw"),
                "elasticity": lambda: elasticity(rng, n), "diffusion": lambda: diffusion(rng, n)}
    A, name = builders[kind](), kind
    if rng.random() < ROW_SCALED_FRACTION:
        d = sp.diags(10 ** rng.uniform(0, rng.uniform(0.5, 3), A.shape[0]))
        A, name = (d @ A @ d).tocsr(), name + "+rows"
    if rng.random() < JACOBI_FRACTION:
        d = sp.diags(1 / np.sqrt(A.diagonal()))
        A, name = (d @ A @ d).tocsr(), name + "/jacobi"
    return name, A


def operator_spectrum(seed: int, kind: str | None = None, n_range: tuple[int, int] = (300, 2000)) -> tuple[str, np.ndarray]:
    """``(name, λ ascending)`` of :func:`random_operator` (dense ``eigvalsh``)."""
    name, A = random_operator(seed, kind, n_range)
    return name, np.linalg.eigvalsh(A.toarray())
