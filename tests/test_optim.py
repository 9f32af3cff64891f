"""autospec.optim: Muon and Shampoo against reference steps computed with SVD/eigh, the AdamW/Adam
paths against torch's, the dtype policy, state-dict round trips (bit-identical resume on CPU) and
bad configurations."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from autospec.errors import InputTypeError, InputValueError
from autospec.optim import ORTHOGONALIZERS, ROOTS, Muon, Shampoo, muon_param_groups
from autospec.optim.functions import inverse_fourth_root, orthogonalize


def _svd_polar(G: torch.Tensor) -> torch.Tensor:
    U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    return U @ Vh


def _eigh_root(A: torch.Tensor) -> torch.Tensor:
    lam, V = torch.linalg.eigh(A.double())
    return (V * lam.pow(-0.25).unsqueeze(-2)) @ V.mT


def _params(*shapes, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def _grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


# --------------------------------------------------------------------------- Muon


def _muon_reference(p0, grads, *, lr, momentum, wd, nesterov=True):
    """Muon's update with the exact polar factor (SVD), step by step."""
    p, buf = p0.detach().clone(), torch.zeros_like(p0)
    for g in grads:
        buf = momentum * buf + (1 - momentum) * g
        u = (1 - momentum) * g + momentum * buf if nesterov else buf
        m = u.reshape(u.shape[0], -1)
        q = _svd_polar(m).reshape(p.shape)
        p = p * (1 - lr * wd) - lr * math.sqrt(max(1, m.shape[0] / m.shape[1])) * q
    return p


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_eigh_matches_the_svd_reference_step(nesterov):
    (W,) = _params((6, 4))  # tall: the lr is scaled by sqrt(6/4)
    p0 = W.detach().clone()
    opt = Muon([W], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov, orthogonalizer="eigh")
    grads = []
    for k in range(3):
        _grads([W], seed=10 + k)
        grads.append(W.grad.clone())
        opt.step()
    ref = _muon_reference(p0, grads, lr=0.1, momentum=0.9, wd=0.01, nesterov=nesterov)
    torch.testing.assert_close(W.detach(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", [m for m in ORTHOGONALIZERS if m not in ("muon", "eigh")])
def test_converging_orthogonalizers_reach_the_svd_polar_factor(method):
    (G,) = _params((5, 7, 3), seed=3)  # a batch of tall matrices
    Q, info = orthogonalize(G.detach(), method, steps=60, tol=1e-10)
    torch.testing.assert_close(Q, _svd_polar(G.detach()), rtol=0, atol=1e-7)
    assert info.matmuls > 0


def test_muon_orthogonalizer_is_kellers_quintic():
    (G,) = _params((8, 12), seed=4)
    X = G.detach() / torch.linalg.matrix_norm(G.detach())
    a, b, c = 3.4445, -4.7750, 2.0315
    for _ in range(5):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    Q, info = orthogonalize(G.detach(), "muon", steps=5)
    torch.testing.assert_close(Q, X, rtol=0, atol=1e-10)
    assert info.matmuls == 16


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon needs torch >= 2.9")
def test_muon_with_the_muon_quintic_tracks_torch_muon_in_bfloat16():
    (W,) = _params((16, 24), seed=5, dtype=torch.float32)
    V = W.detach().clone().requires_grad_()
    ours = Muon([W], lr=0.02, orthogonalizer="muon", precision="bf16")
    theirs = torch.optim.Muon([V], lr=0.02, weight_decay=0.0)
    for k in range(3):
        _grads([W], seed=20 + k)
        V.grad = W.grad.clone()
        ours.step()
        theirs.step()
    assert float((W - V).detach().abs().max()) < 2e-3  # bf16 iterations, different (but equal in exact arithmetic) forms


def test_muon_autospec_step_is_close_to_the_exact_step():
    """The learned engine at its 5 steps is an approximate polar factor; run to a tolerance it is exact."""
    (W,) = _params((12, 20), seed=6)
    exact = copy.deepcopy(W)
    _grads([W], seed=1)
    exact.grad = W.grad.clone()
    Muon([W], lr=0.05, orthogonalizer="autospec", steps=40, tol=1e-10).step()
    Muon([exact], lr=0.05, orthogonalizer="eigh").step()
    torch.testing.assert_close(W.detach(), exact.detach(), rtol=0, atol=1e-8)


def test_muon_vectors_and_excluded_params_take_torch_adamw_steps():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 6), torch.nn.Linear(6, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 3)).double()
    groups = muon_param_groups(model, adamw_lr=1e-2)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in groups[0]["params"]] == ["1.weight"]
    assert sorted(names[id(p)] for p in groups[1]["params"]) == ["0.weight", "1.bias", "3.bias", "3.weight"]
    twin = copy.deepcopy(model)
    opt = Muon(groups, lr=0.02, weight_decay=0.1, orthogonalizer="eigh", adamw_betas=(0.9, 0.99))
    adamw = torch.optim.AdamW([p for n, p in twin.named_parameters() if n != "1.weight"], lr=1e-2, betas=(0.9, 0.99),
                              eps=1e-8, weight_decay=0.1, foreach=False)
    hidden = Muon([twin[1].weight], lr=0.02, weight_decay=0.1, orthogonalizer="eigh")
    x = torch.tensor([1, 4, 7])
    for _ in range(3):
        for m, optimizers in ((model, [opt]), (twin, [adamw, hidden])):
            m.zero_grad()
            m(x).square().sum().backward()
            for o in optimizers:
                o.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14)


def test_muon_batches_same_shapes_and_flattens_conv_filters():
    params = _params((4, 3, 2, 2), (4, 3, 2, 2), (5, 5), (7,), seed=7)
    singles = [copy.deepcopy(p) for p in params]
    _grads(params, seed=8)
    for p, s in zip(params, singles):
        s.grad = p.grad.clone()
    opt = Muon(params, lr=0.1, orthogonalizer="polar_express", adamw_lr=0.01)
    opt.step()
    assert opt.counts["calls"] == 2  # one batch of the two conv filters, one of the 5×5
    for s in singles:
        Muon([s], lr=0.1, orthogonalizer="polar_express", adamw_lr=0.01).step()
    for p, s in zip(params, singles):
        torch.testing.assert_close(p, s, rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- Shampoo


def _shampoo_reference(p0, grads, *, lr, betas, eps, damping, update_freq, grafting="adam"):
    """Shampoo with ``grafting`` (Adam, SGD or none) and exact (eigh) roots, step by step, float64."""
    b1, b2 = betas
    p = p0.detach().clone()
    L, R = torch.zeros(p.shape[0], p.shape[0]), torch.zeros(p.shape[1], p.shape[1])
    M, V = torch.zeros_like(p), torch.zeros_like(p)
    left = right = None
    for t, G in enumerate(grads, start=1):
        L, R = b2 * L + (1 - b2) * G @ G.T, b2 * R + (1 - b2) * G.T @ G
        M, V = b1 * M + (1 - b1) * G, b2 * V + (1 - b2) * G * G
        A = (M / (1 - b1**t)) / ((V / (1 - b2**t)).sqrt() + eps) if grafting == "adam" else M
        if t % update_freq == 0:
            left = _eigh_root(L + damping * torch.linalg.matrix_norm(L) * torch.eye(len(L)))
            right = _eigh_root(R + damping * torch.linalg.matrix_norm(R) * torch.eye(len(R)))
        step = A
        if left is not None:
            P = left @ M @ right
            step = P if grafting == "none" else P * A.norm() / P.norm()
        p = p - lr * step
    return p


@pytest.mark.parametrize("root", ROOTS)
def test_shampoo_matches_the_eigh_reference_step(root):
    (W,) = _params((6, 5), seed=9)
    p0 = W.detach().clone()
    tol = 1e-12 if root == "eigh" else 1e-7
    opt = Shampoo([W], lr=0.1, betas=(0.9, 0.95), damping=1e-3, update_freq=2, root=root, root_tol=1e-11)
    grads = []
    for k in range(5):
        _grads([W], seed=30 + k)
        grads.append(W.grad.clone())
        opt.step()
    ref = _shampoo_reference(p0, grads, lr=0.1, betas=(0.9, 0.95), eps=1e-8, damping=1e-3, update_freq=2)
    torch.testing.assert_close(W.detach(), ref, rtol=0, atol=tol)
    assert opt.counts["calls"] == 4 and opt.counts["fallbacks"] == 0  # steps 2 and 4, left and right sizes differ


@pytest.mark.parametrize("grafting", ["sgd", "none"])
def test_shampoo_grafting_matches_the_eigh_reference_step(grafting):
    (W,) = _params((4, 7), seed=15)
    p0 = W.detach().clone()
    opt = Shampoo([W], lr=0.05, betas=(0.8, 0.9), damping=1e-2, update_freq=3, root="eigh", grafting=grafting)
    grads = []
    for k in range(7):
        _grads([W], seed=50 + k)
        grads.append(W.grad.clone())
        opt.step()
    ref = _shampoo_reference(p0, grads, lr=0.05, betas=(0.8, 0.9), eps=1e-8, damping=1e-2, update_freq=3,
                             grafting=grafting)
    torch.testing.assert_close(W.detach(), ref, rtol=0, atol=1e-12)


def test_shampoo_batches_statistics_of_one_size():
    params = _params((5, 5), (5, 5), (5, 3), seed=16)
    singles = [copy.deepcopy(p) for p in params]
    _grads(params, seed=17)
    for p, s in zip(params, singles):
        s.grad = p.grad.clone()
    opt = Shampoo(params, lr=0.1, update_freq=1, root="eigh")
    opt.step()
    assert opt.counts["calls"] == 2  # one batch of the five 5×5 statistics, one of the 3×3
    for s in singles:
        Shampoo([s], lr=0.1, update_freq=1, root="eigh").step()
    for p, s in zip(params, singles):
        torch.testing.assert_close(p, s, rtol=0, atol=1e-12)


@pytest.mark.parametrize("root", [r for r in ROOTS if r != "eigh"])
def test_inverse_fourth_roots_in_float32(root):
    gen = torch.Generator().manual_seed(11)
    G = torch.randn(3, 24, 10, generator=gen, dtype=torch.float64)
    A = G @ G.mT + 1e-3 * torch.eye(24)
    X, info, fallbacks = inverse_fourth_root(A.float(), root)
    assert X.dtype == torch.float32 and fallbacks == 0 and info.converged
    ref = _eigh_root(A)
    assert float(torch.linalg.matrix_norm(X.double() - ref).max() / torch.linalg.matrix_norm(ref).min()) < 2e-3


def test_shampoo_without_preconditioners_is_adam():
    params = _params((6, 5), (5,), seed=12)
    twins = [copy.deepcopy(p) for p in params]
    opt = Shampoo(params, lr=0.01, betas=(0.9, 0.99), start_preconditioning_step=100)
    adam = torch.optim.Adam(twins, lr=0.01, betas=(0.9, 0.99), eps=1e-8, foreach=False)
    for k in range(4):
        _grads(params, seed=40 + k)
        for p, q in zip(params, twins):
            q.grad = p.grad.clone()
        opt.step()
        adam.step()
    for p, q in zip(params, twins):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14)


def test_shampoo_skips_long_sides_and_keeps_bfloat16_statistics_in_float32():
    (W,) = _params((40, 6), seed=13, dtype=torch.bfloat16)
    opt = Shampoo([W], lr=0.01, update_freq=1, max_preconditioner_dim=32, root="eigh")
    _grads([W], seed=14)
    opt.step()
    state = opt.state[W]
    assert "L" not in state and "left" not in state and state["right"].shape == (6, 6)
    assert state["R"].dtype == torch.float32 and state["momentum"].dtype == torch.float32
    assert W.dtype == torch.bfloat16 and bool(torch.isfinite(W).all())


# --------------------------------------------------------------------------- precision, state, configs


def test_precision_policy_never_downcasts_silently(monkeypatch):
    import autospec.optim.muon as muon_module

    seen = []

    def spy(G, method, **kw):
        seen.append(G.dtype)
        return orthogonalize(G, method, **kw)

    monkeypatch.setattr(muon_module, "orthogonalize", spy)
    for dtype, precision, expected in [(torch.float64, None, torch.float64), (torch.float32, None, torch.float32),
                                       (torch.bfloat16, None, torch.bfloat16), (torch.float32, "bf16", torch.bfloat16),
                                       (torch.bfloat16, torch.float64, torch.float64)]:
        (W,) = _params((4, 6), dtype=dtype)
        _grads([W], seed=1)
        Muon([W], orthogonalizer="polar_express", precision=precision).step()
        assert seen[-1] == expected and W.dtype == dtype


def _train(make_opt, model, steps, start=0):
    gen = torch.Generator().manual_seed(99)
    xs = torch.randn(steps + start, 8, 5, generator=gen)
    opt = make_opt(model)
    for k in range(start, start + steps):
        opt.zero_grad()
        model(xs[k].to(next(model.parameters()).dtype)).square().mean().backward()
        opt.step()
    return opt


def _state_bytes(opt) -> bytes:
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("make_opt, dtype", [
    (lambda m: Muon(muon_param_groups(m), lr=0.02, orthogonalizer="autospec"), torch.float32),
    (lambda m: Muon(m.parameters(), lr=0.02, orthogonalizer="prism", nesterov=False), torch.float32),
    (lambda m: Shampoo(m.parameters(), lr=0.01, update_freq=2, root="autospec"), torch.bfloat16),
    (lambda m: Shampoo(m.parameters(), lr=0.01, update_freq=3, root="inverse_newton", grafting="sgd"), torch.float32),
], ids=["muon-autospec", "muon-prism", "shampoo-autospec-bf16", "shampoo-inverse_newton"])
def test_state_dict_resume_is_bit_identical(make_opt, dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).to(dtype)
    straight = copy.deepcopy(model)
    _train(make_opt, straight, 8)

    first = copy.deepcopy(model)
    opt = _train(make_opt, first, 4)
    saved = io.BytesIO(_state_bytes(opt))
    resumed = copy.deepcopy(first)
    fresh = make_opt(resumed)
    fresh.load_state_dict(torch.load(saved, weights_only=True))
    for p, q in zip(opt.state.values(), fresh.state.values()):
        for key, value in p.items():
            if isinstance(value, torch.Tensor):
                assert q[key].dtype == value.dtype and torch.equal(q[key], value), key
    _train(lambda m: fresh, resumed, 4, start=4)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kwargs", [
    dict(lr=-0.01), dict(orthogonalizer="svd"), dict(momentum=1.0), dict(momentum=-0.1), dict(steps=0),
    dict(weight_decay=-1.0), dict(precision="float16"), dict(adjust_lr_fn="spectral"), dict(adamw_lr=-1.0),
    dict(adamw_betas=(0.9, 1.0)), dict(orthogonalizer="muon", engine="matfun-polar-bf16"), dict(tol=-1.0),
])
def test_muon_bad_configurations_raise(kwargs):
    (W,) = _params((3, 3))
    with pytest.raises(InputValueError):
        Muon([W], **kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(lr=-0.01), dict(root="polar_express"), dict(root="cholesky"), dict(update_freq=0), dict(betas=(1.0, 0.9)),
    dict(eps=-1.0), dict(damping=-1e-6), dict(grafting="adagrad"), dict(max_preconditioner_dim=0),
    dict(start_preconditioning_step=0), dict(root_max_iters=0), dict(precision="int8"),
])
def test_shampoo_bad_configurations_raise(kwargs):
    (W,) = _params((3, 3))
    with pytest.raises(InputValueError):
        Shampoo([W], **kwargs)


def test_bad_groups_and_parameters_raise():
    (W,) = _params((3, 3))
    (b,) = _params((3,))
    with pytest.raises(InputValueError, match="use_muon=True"):
        Muon([{"params": [W, b], "use_muon": True}])
    opt = Muon([W])
    with pytest.raises(InputValueError, match="lr"):
        opt.add_param_group({"params": [b], "lr": -1.0})
    with pytest.raises(InputTypeError):
        Muon([torch.zeros(3, 3, dtype=torch.float16, requires_grad=True)])
    with pytest.raises(InputValueError, match="not parameters"):
        muon_param_groups(torch.nn.Linear(3, 3), head=["fc.weight"])
