"""Both recurrence forms: Chebyshev instances against closed forms, gradients, batching."""

import numpy as np
import pytest
import torch

from autospec import errors
from autospec.core.operators import as_operator
from autospec.core.recurrences import (
    ChebyshevBasis,
    ThreeTerm,
    chebyshev_T,
    chebyshev_basis_preconditioner,
    chebyshev_interpolant,
    chebyshev_three_term,
    evaluate,
    residual_polynomial,
)

from conftest import random_spd


@pytest.mark.parametrize("degree", [0, 1, 2, 5, 10, 25, 50])
@pytest.mark.parametrize("a, b", [(1e-2, 1.0), (1e-4, 1.0), (0.3, 2.0)])
def test_three_term_reproduces_closed_form_residual_polynomial(degree, a, b):
    poly = chebyshev_three_term(torch.tensor(a), torch.tensor(b), degree)
    lam = torch.linspace(0, b, 2001)
    theta, delta = (a + b) / 2, (b - a) / 2
    ref = chebyshev_T(degree + 1, (theta - lam.numpy()) / delta) / chebyshev_T(degree + 1, np.array([theta / delta]))
    np.testing.assert_allclose(residual_polynomial(poly, lam).numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("degree", [0, 1, 3, 10, 50])
def test_basis_form_reproduces_T_d(degree):
    a, b = 0.2, 3.0
    c = torch.zeros(degree + 1)
    c[-1] = 1
    lam = torch.linspace(a, b, 1001)
    ref = chebyshev_T(degree, (lam.numpy() - (a + b) / 2) / ((b - a) / 2))
    np.testing.assert_allclose(evaluate(ChebyshevBasis(c, torch.tensor(a), torch.tensor(b)), lam).numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("degree", [1, 10, 30])
def test_basis_form_holds_the_chebyshev_preconditioner_exactly(degree):
    a, b = torch.tensor(1e-3), torch.tensor(1.0)
    lam = torch.linspace(0, 1, 1001)
    three = evaluate(chebyshev_three_term(a, b, degree), lam)
    basis = chebyshev_basis_preconditioner(a, b, degree)
    on_interval = lam >= a
    np.testing.assert_allclose(evaluate(basis, lam)[on_interval].numpy(), three[on_interval].numpy(), rtol=1e-10)


def test_interpolant_converges_for_smooth_functions():
    a, b = torch.tensor(0.1), torch.tensor(1.0)
    lam = torch.linspace(0.1, 1, 500)
    poly = chebyshev_interpolant(torch.rsqrt, a, b, 40)  # error ~ 1.925^-40
    np.testing.assert_allclose(evaluate(poly, lam).numpy(), lam.rsqrt().numpy(), rtol=1e-10)


def test_matrix_application_matches_eigen_decomposition():
    A = random_spd(40, 1e3, seed=5)
    w, Q = np.linalg.eigh(A)
    op = as_operator(A)
    z = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    for poly in (chebyshev_three_term(torch.tensor(1e-3), torch.tensor(1.0), 8),
                 chebyshev_interpolant(torch.rsqrt, torch.tensor(1e-3), torch.tensor(1.0), 8)):
        y = poly.apply(op.matmat, z)
        ref = Q @ (evaluate(poly, torch.from_numpy(w)).numpy()[:, None] * (Q.T @ z.numpy()))
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10, atol=1e-10)
    assert op.matvecs == 2 * 8 * 3


def test_batched_coefficients_broadcast_over_operators_and_columns():
    a = torch.tensor([0.01, 0.1, 0.5])
    poly = chebyshev_three_term(a, torch.ones(3), 6)
    lam = torch.rand(3, 50)
    batched = evaluate(poly, lam)
    for i in range(3):
        single = evaluate(chebyshev_three_term(a[i], torch.tensor(1.0), 6), lam[i])
        torch.testing.assert_close(batched[i], single)


def test_gradcheck_both_forms():
    lam = torch.rand(2, 12) + 0.05
    c0 = torch.rand(2, requires_grad=True)
    alpha = torch.rand(2, 4, requires_grad=True)
    beta = torch.rand(2, 4, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c0, al, be: evaluate(ThreeTerm(c0, al, be), lam), (c0, alpha, beta))
    c = torch.randn(2, 6, requires_grad=True)
    a = torch.tensor([0.05, 0.1], requires_grad=True)
    b = torch.tensor([1.0, 1.5], requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, a, b: evaluate(ChebyshevBasis(c, a, b), lam), (c, a, b))


def test_invalid_interval_is_rejected():
    with pytest.raises(errors.InputValueError, match="0 < a < b"):
        chebyshev_three_term(torch.tensor(1.0), torch.tensor(0.5), 3)
