"""Sketching operators of randomized numerical linear algebra (``autospec.kernels.sketch``).

A sketch is a random ``d × n`` matrix ``S`` (``d`` ≪ ``n``) that approximately preserves the
geometry of every low-dimensional subspace: for an ``n × k`` orthonormal ``U``, the singular values
of ``S U`` lie in ``[1 − ε, 1 + ε]``. For a Gaussian ``S`` the Marchenko–Pastur law puts them in
``1 ± √(k/d)`` (up to O(d^{−2/3}) fluctuations); the sparse and trigonometric sketches below behave
alike on incoherent subspaces at a fraction of the cost.

* :class:`GaussianSketch` — ``S = G/√d``, ``G_ij ~ N(0, 1)`` (a dense GEMM, ``O(dnk)``);
* :class:`SparseSignSketch` — ``s`` nonzeros ``±1/√s`` per column, one in each of ``s`` row blocks
  (Kane–Nelson SJLT; ``s = 1`` is CountSketch), ``O(s·n·k)``;
* :class:`SRHT` — ``S = √(N/d) · R H D`` with ``D`` random signs on the ``n`` inputs zero-padded to
  ``N = 2^p ≥ n``, ``H`` the orthonormal Walsh–Hadamard matrix (``H² = I``) applied by the fast
  transform (``O(N log N)`` per column, never a dense Hadamard), ``R`` ``d`` rows of ``N`` without
  replacement.

Every sketch applies to torch tensors of any float dtype on any device, batched over leading dims:
``apply_left(A)`` is ``S A`` for ``A (..., n, k)``, ``apply_right(A)`` is ``A Sᵀ`` for
``A (..., k, n)``. Random numbers come from ``rng`` (``None``, an int seed, a NumPy ``Generator``
or a ``torch.Generator``), drawn on the CPU so a seed gives the same sketch on every device.
``cost`` is what one application to a data matrix costs in passes over it (the unit of matvecs):
``d`` for Gaussian, ``s`` for sparse sign, ``⌈log₂ N⌉`` for SRHT.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from autospec.errors import InputTypeError, InputValueError

KINDS = ("gaussian", "sparse_sign", "srht")
FLOAT_DTYPES = (torch.float64, torch.float32)


def torch_generator(rng=None) -> torch.Generator:
    """A CPU ``torch.Generator`` from ``None`` (fresh entropy), an int seed, a NumPy ``Generator``
    (one draw from it, so the caller's stream advances) or a ``torch.Generator`` (used as it is)."""
    if isinstance(rng, torch.Generator):
        return rng
    if rng is None:
        seed = int(np.random.default_rng().integers(2**62))
    elif isinstance(rng, np.random.Generator):
        seed = int(rng.integers(2**62))
    elif isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        seed = int(rng)
    else:
        raise InputTypeError(f"rng must be None, an int seed, a numpy Generator or a torch Generator, got {type(rng).__name__}")
    return torch.Generator().manual_seed(seed)


class Sketch:
    """A random ``d × n`` operator ``S``; subclasses implement :meth:`_left` on ``(..., n, k)``."""

    cost: int = 1

    def __init__(self, d: int, n: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):
        d, n = _positive_int(d, "sketch size d"), _positive_int(n, "input dimension n")
        if dtype not in FLOAT_DTYPES:
            raise InputTypeError(f"sketches are float64 or float32, got {dtype}")
        self.shape = (d, n)
        self.dtype = dtype
        self.device = torch.device(device)

    @property
    def d(self) -> int:
        return self.shape[0]

    @property
    def n(self) -> int:
        return self.shape[1]

    def apply_left(self, A: torch.Tensor) -> torch.Tensor:
        """``S A`` for ``A (..., n, k)`` (a vector ``(n,)`` gives ``(d,)``)."""
        vector = A.ndim == 1
        A = A.unsqueeze(-1) if vector else A
        if A.shape[-2] != self.n:
            raise InputValueError(f"sketch of shape {self.shape} cannot be applied to {tuple(A.shape)} from the left "
                                  f"(needs {self.n} rows)")
        out = self._left(A.to(dtype=self.dtype, device=self.device))
        return out.squeeze(-1) if vector else out

    def apply_right(self, A: torch.Tensor) -> torch.Tensor:
        """``A Sᵀ = (S Aᵀ)ᵀ`` for ``A (..., k, n)``."""
        if A.ndim < 2 or A.shape[-1] != self.n:
            raise InputValueError(f"sketch of shape {self.shape} cannot be applied to {tuple(A.shape)} from the right "
                                  f"(needs {self.n} columns)")
        return self.apply_left(A.mT).mT

    __matmul__ = apply_left

    def to_dense(self) -> torch.Tensor:  # pragma: no cover - abstract
        """``S`` as a dense ``(d, n)`` tensor in ``O(d·n)`` memory (Nyström's test matrix ``Ω = Sᵀ``,
        sketches of sparse data)."""
        raise NotImplementedError

    def _left(self, A: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, n={self.n}, dtype={self.dtype})"


class GaussianSketch(Sketch):
    """``S = G/√d`` with i.i.d. standard normal ``G`` (``E[SᵀS] = I``)."""

    def __init__(self, d: int, n: int, *, rng=None, dtype=torch.float64, device="cpu"):
        super().__init__(d, n, dtype, device)
        gen = torch_generator(rng)
        self.cost = self.d
        self.matrix = (torch.randn(self.d, self.n, generator=gen, dtype=torch.float64) / math.sqrt(self.d)).to(dtype).to(self.device)

    def _left(self, A):
        return self.matrix @ A

    def to_dense(self):
        return self.matrix.clone()


class SparseSignSketch(Sketch):
    """``s`` nonzeros ``±1/√s`` per column: column j has one in each block ``[⌊t d/s⌋, ⌊(t+1) d/s⌋)``,
    ``t = 0..s−1``, at a uniform row with a uniform sign (distinct rows; ``E[SᵀS] = I``).
    ``s = 1`` is CountSketch. ``S A`` is ``s`` scatter-adds of the signed rows of A."""

    def __init__(self, d: int, n: int, s: int = 8, *, rng=None, dtype=torch.float64, device="cpu"):
        super().__init__(d, n, dtype, device)
        s = _positive_int(s, "nonzeros per column s")
        if s > self.d:
            raise InputValueError(f"a sparse sign sketch needs s <= d nonzeros per column, got s={s} > d={self.d}")
        gen = torch_generator(rng)
        self.s, self.cost = s, s
        starts = torch.tensor([t * self.d // s for t in range(s + 1)])
        widths = (starts[1:] - starts[:-1]).unsqueeze(-1)
        offset = (torch.rand(s, self.n, generator=gen, dtype=torch.float64) * widths).long().clamp_max(widths - 1)
        self.rows = (starts[:-1].unsqueeze(-1) + offset).to(self.device)  # (s, n)
        signs = torch.randint(0, 2, (s, self.n), generator=gen).to(torch.float64) * 2 - 1
        self.values = (signs / math.sqrt(s)).to(dtype).to(self.device)  # (s, n)

    def _left(self, A):
        out = A.new_zeros(*A.shape[:-2], self.d, A.shape[-1])
        for t in range(self.s):
            out.index_add_(-2, self.rows[t], A * self.values[t].unsqueeze(-1))
        return out

    def to_dense(self):
        """``S[rows[t, j], j] = values[t, j]`` scattered into zeros."""
        out = torch.zeros(self.d, self.n, dtype=self.dtype, device=self.device)
        columns = torch.arange(self.n, device=self.device).expand(self.s, -1)
        return out.index_put_((self.rows, columns), self.values)


class SRHT(Sketch):
    """Subsampled randomized Hadamard transform ``S = √(N/d) R H D`` (see the module docstring);
    needs ``d <= N``. Rows of ``R`` are distinct, so ``E[SᵀS] = I`` on the ``n`` inputs."""

    def __init__(self, d: int, n: int, *, rng=None, dtype=torch.float64, device="cpu"):
        super().__init__(d, n, dtype, device)
        self.padded = 1 << max(0, (self.n - 1).bit_length())
        if self.d > self.padded:
            raise InputValueError(f"an SRHT samples d <= N = {self.padded} rows (n = {self.n} padded to a power of 2), "
                                  f"got d={self.d}")
        gen = torch_generator(rng)
        self.cost = max(1, self.padded.bit_length() - 1)
        self.signs = (torch.randint(0, 2, (self.n,), generator=gen).to(torch.float64) * 2 - 1).to(dtype).to(self.device)
        self.rows = torch.randperm(self.padded, generator=gen)[: self.d].sort().values.to(self.device)
        self.scale = math.sqrt(self.padded / self.d)

    def _left(self, A):
        X = A * self.signs.unsqueeze(-1)
        if self.padded > self.n:
            X = torch.cat([X, X.new_zeros(*X.shape[:-2], self.padded - self.n, X.shape[-1])], dim=-2)
        return fwht(X).index_select(-2, self.rows) * self.scale

    def to_dense(self):
        """``S[j, i] = √(N/d) H[r_j, i] D_i = √(N/d) (H E)[i, j] D_i`` (H symmetric, ``E`` the
        ``N × d`` selector of the sampled rows): one fast transform of E, ``O(N d log N)``."""
        E = torch.zeros(self.padded, self.d, dtype=self.dtype, device=self.device)
        E[self.rows, torch.arange(self.d, device=self.device)] = 1
        return (fwht(E)[: self.n] * (self.signs * self.scale).unsqueeze(-1)).mT

    def hadamard(self) -> torch.Tensor:
        """The dense orthonormal Walsh–Hadamard matrix ``H`` of order N (Sylvester), for tests."""
        H = torch.ones(1, 1, dtype=self.dtype, device=self.device)
        while H.shape[0] < self.padded:
            H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
        return H / math.sqrt(self.padded)

    def dense_form(self) -> torch.Tensor:
        """``√(N/d) R H D`` built from the dense Hadamard matrix (``O(N²)``; the check of the fast form)."""
        D = torch.zeros(self.padded, self.n, dtype=self.dtype, device=self.device)
        D[torch.arange(self.n), torch.arange(self.n)] = self.signs
        return self.scale * (self.hadamard() @ D)[self.rows]


def fwht(X: torch.Tensor) -> torch.Tensor:
    """Orthonormal fast Walsh–Hadamard transform ``H X`` along dim −2 of ``X (..., N, k)``, N a power
    of 2: ``log₂ N`` butterfly passes ``(a, b) ↦ (a + b, a − b)``, then ``/√N`` (Sylvester order,
    ``H_{2m} = [[H_m, H_m], [H_m, −H_m]]``)."""
    N, k = X.shape[-2], X.shape[-1]
    if N & (N - 1):
        raise InputValueError(f"the fast Walsh–Hadamard transform needs a power-of-2 length, got {N}")
    lead = X.shape[:-2]
    h = 1
    while h < N:
        Y = X.reshape(*lead, N // (2 * h), 2, h, k)
        a, b = Y.select(-3, 0), Y.select(-3, 1)
        X = torch.stack([a + b, a - b], dim=-3).reshape(*lead, N, k)
        h *= 2
    return X / math.sqrt(N)


def make_sketch(kind: str, d: int, n: int, *, rng=None, dtype=torch.float64, device="cpu", s: int = 8) -> Sketch:
    """A sketch by name: ``"gaussian"``, ``"sparse_sign"`` (``s`` nonzeros per column; ``s`` is
    capped at ``d``) or ``"srht"``."""
    if kind == "gaussian":
        return GaussianSketch(d, n, rng=rng, dtype=dtype, device=device)
    if kind == "sparse_sign":
        return SparseSignSketch(d, n, min(s, _positive_int(d, "sketch size d")), rng=rng, dtype=dtype, device=device)
    if kind == "srht":
        return SRHT(d, n, rng=rng, dtype=dtype, device=device)
    raise InputValueError(f"unknown sketch {kind!r}; choose one of {KINDS}")


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)
