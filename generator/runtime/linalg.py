"""Runtime of the generated modules for the language's matrix functions: what torch has no one call for.

Generated code imports these (and torch only): ``inverse_root(A, p)`` is the spec language's
``inverse_root``, the matrix ``A^(-1/p)`` of a symmetric positive semidefinite matrix, computed as
pytorch_optimizer computes Shampoo's preconditioners (through the singular value decomposition, in
float32, or float64 for float64 matrices, returned in the matrix's dtype), so that a spec written
from Shampoo matches its reference to the last rounding of the decomposition.
"""

from __future__ import annotations

import torch
from torch import Tensor


def inverse_root(matrix: Tensor, power: float) -> Tensor:
    """``matrix ** (-1 / power)`` of a symmetric positive semidefinite matrix (or a batch of
    them), through its singular value decomposition ``U diag(s) Vᴴ``: ``U diag(s^(-1/p)) Vᴴ``.
    """
    dtype = torch.float64 if matrix.dtype == torch.float64 else torch.float32
    u, s, vh = torch.linalg.svd(matrix.to(dtype), full_matrices=False)
    s.pow_(-1.0 / power)
    return ((u * s.unsqueeze(-2)) @ vh).to(matrix.dtype)
