"""``autospec.optim``: Muon and Shampoo as ``torch.optim`` optimizers, with the matrix functions of
:mod:`autospec.matfun` — the shipped learned engines by default — as their polar factor and
inverse fourth roots.

>>> from autospec.optim import Muon, Shampoo, muon_param_groups
>>> opt = Muon(muon_param_groups(model), lr=0.02, orthogonalizer="autospec")  # polar_express, muon, prism, eigh
>>> opt = Shampoo(model.parameters(), lr=1e-3, root="autospec")  # newton_schulz, prism, inverse_newton, eigh

:mod:`.common` states the dtype policy; :mod:`.functions` the matrix functions behind the choices.
"""

from autospec.optim.functions import ORTHOGONALIZERS, ROOTS, inverse_fourth_root, orthogonalize
from autospec.optim.muon import Muon, muon_param_groups
from autospec.optim.shampoo import GRAFTING, Shampoo

__all__ = ["GRAFTING", "ORTHOGONALIZERS", "ROOTS", "Muon", "Shampoo", "inverse_fourth_root", "muon_param_groups",
           "orthogonalize"]
