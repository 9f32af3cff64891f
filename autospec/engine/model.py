"""The neural engine: probe tokens → recurrence-coefficient corrections.

Architecture (the paper's Figure 1): an embedding Φ maps every probe token (one per Ritz pair) to
``width`` features, a permutation-invariant backbone Θ pools the set into one vector (DeepSets,
attention pooling, a small Transformer followed by attention pooling, or a Parametric Matrix Model
whose eigenvalues are the features, :mod:`autospec.engine.pmm`), global features are
appended, and one head per recurrence step emits that step's corrections; a global head emits
corrections that act on the whole polynomial (e.g. the Chebyshev interval). Every head is
zero-initialised, so an untrained engine returns zero corrections — the task's Chebyshev baseline.

Token features (scale ``s`` chosen by the task): ``θ_j/s``, ``log(θ_j/s)/10``, ``log(r_j/s)/10``;
global features: ``log(θ_max/θ_min)/10``, ``m/100``, ``log(upper/s)`` (logs divided by 10 so every
input is O(1) for spectra with κ up to ~1e10).
"""

from __future__ import annotations

import torch
from torch import nn

from autospec.errors import InputValueError
from autospec.core.probe import Probe
from autospec.engine.pmm import PMM

TOKEN_FEATURES = 3
GLOBAL_FEATURES = 3
_TINY = 1e-30
LOG_SCALE = 10.0


def probe_features(probe: Probe, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Token features ``(..., m, 3)`` and global features ``(..., 3)`` of a probe, in float32."""
    s = scale.unsqueeze(-1)
    theta = probe.ritz.clamp_min(_TINY) / s
    resid = probe.residuals / s
    tokens = torch.stack([theta, theta.log() / LOG_SCALE, (resid + 1e-16).log() / LOG_SCALE], dim=-1)
    glob = torch.stack(
        [
            (probe.theta_max.clamp_min(_TINY) / probe.theta_min.clamp_min(_TINY)).log() / LOG_SCALE,
            torch.full_like(probe.theta_max, probe.steps / 100.0),
            (probe.upper / scale).log(),
        ],
        dim=-1,
    )
    return tokens.float(), glob.float()


class DeepSets(nn.Module):
    """Θ(X) = ρ([mean_j φ_j, max_j φ_j])."""

    def __init__(self, width: int, depth: int = 2):
        super().__init__()
        self.rho = _mlp(2 * width, width, width, depth)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.rho(torch.cat([tokens.mean(-2), tokens.amax(-2)], dim=-1))


class AttentionPooling(nn.Module):
    """Θ(X) = MLP(softmax(q Kᵀ/√w) V): a learned query attends over the token set."""

    def __init__(self, width: int, depth: int = 2, heads: int = 4):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, width) / width**0.5)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.out = _mlp(width, width, width, depth)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lead = tokens.shape[:-2]
        flat = tokens.reshape(-1, *tokens.shape[-2:])
        pooled, _ = self.attn(self.query.expand(flat.shape[0], -1, -1), flat, flat, need_weights=False)
        return self.out(pooled.squeeze(1)).reshape(*lead, -1)


class Transformer(nn.Module):
    """Θ(X) = attention-pool(TransformerEncoder(X)) (no positional encoding: permutation invariant)."""

    def __init__(self, width: int, depth: int = 2, heads: int = 4):
        super().__init__()
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.pool = AttentionPooling(width, 1, heads)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lead = tokens.shape[:-2]
        flat = self.encoder(tokens.reshape(-1, *tokens.shape[-2:]))
        return self.pool(flat).reshape(*lead, -1)


BACKBONES = {"deepsets": DeepSets, "attention": AttentionPooling, "transformer": Transformer, "pmm": PMM}
ATTENTION = ("attention", "transformer")  # the backbones that take ``heads``


def build_backbone(name: str, width: int, depth: int, heads: int, options: dict) -> nn.Module:
    """The backbone ``name``; ``options`` are the backbone's own settings (``PMM.options``)."""
    if name not in BACKBONES:
        raise InputValueError(f"unknown engine backbone {name!r}; choose one of {sorted(BACKBONES)}")
    cls = BACKBONES[name]
    unknown = sorted(set(options) - set(getattr(cls, "options", ())))
    if unknown:
        raise InputValueError(f"the engine settings do not build backbone {name!r}: it takes no setting(s) {unknown}")
    return cls(width, depth, **({"heads": heads} if name in ATTENTION else {}), **options)


def _mlp(d_in: int, d_hidden: int, d_out: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else d_hidden, d_hidden), nn.GELU()]
    layers.append(nn.Linear(d_hidden if depth else d_in, d_out))
    return nn.Sequential(*layers)


def _trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class Engine(nn.Module):
    """Probe → corrections ``(global (..., G), per-step (..., S, P))``; zero at initialisation.

    The task's ``layout`` fixes the output shape and, when its features are not the default
    :func:`probe_features`, the number of token and global features; ``options`` are settings of
    the backbone itself (the PMM's ``matrix_size``, ``eigenvalues``, ...)."""

    def __init__(self, steps: int, per_step: int, global_outputs: int = 0, backbone: str = "deepsets",
                 width: int = 64, depth: int = 2, heads: int = 4, token_features: int = TOKEN_FEATURES,
                 global_features: int = GLOBAL_FEATURES, **options):
        super().__init__()
        if steps < 1 or per_step < 1:
            raise InputValueError(f"engine needs steps >= 1 and per_step >= 1, got {steps}, {per_step}")
        self.steps, self.per_step, self.global_outputs = steps, per_step, global_outputs
        self.embed = _mlp(token_features, width, width, 1)
        self.backbone = build_backbone(backbone, width, depth, heads, options)
        self.trunk = _mlp(width + global_features, width, width, 1)
        self.step_heads = nn.ModuleList(nn.Linear(width, per_step) for _ in range(steps))
        self.global_head = nn.Linear(width, max(global_outputs, 1))
        for head in [*self.step_heads, self.global_head]:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters: ``{"total": ..., "backbone": ...}``."""
        return {"total": _trainable(self), "backbone": _trainable(self.backbone)}

    def forward(self, tokens: torch.Tensor, glob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self.global_head.weight.dtype
        tokens, glob = tokens.to(dtype), glob.to(dtype)
        h = self.trunk(torch.cat([self.backbone(self.embed(tokens)), glob], dim=-1))
        per_step = torch.stack([head(h) for head in self.step_heads], dim=-2)
        return self.global_head(h)[..., : self.global_outputs], per_step
