"""Runtime of the generated modules for the language's matrix functions: what torch has no one call for.

Generated code imports these (and torch only): ``inverse_root(A, p)`` is the spec language's
``inverse_root``, the matrix ``A^(-1/p)`` of a symmetric positive semidefinite matrix, computed as
pytorch_optimizer computes Shampoo's preconditioners (through the singular value decomposition, in
float32, or float64 for float64 matrices, returned in the matrix's dtype), so that a spec written
from Shampoo matches its reference to the last rounding of the decomposition; ``unfold(x, k)`` and
``mode_product(x, M, k)`` are the tensor-algebra operations along one dimension of a tensor of
any rank (Shampoo's statistics and preconditioning, one dimension at a time).
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


def unfold(tensor: Tensor, dim: int) -> Tensor:
    """The mode-``dim`` unfolding of a tensor: a matrix whose rows run along ``dim`` and whose
    columns run over the other dimensions, in their order (``movedim(dim, 0)``, then every
    other dimension flattened): Shampoo's statistic along that dimension is ``U @ U.T``.
    """
    return tensor.movedim(dim, 0).reshape(tensor.size(dim), -1)


def mode_product(tensor: Tensor, matrix: Tensor, dim: int) -> Tensor:
    """The tensor multiplied by the symmetric ``matrix`` along ``dim`` (the mode-``dim``
    product); the other dimensions keep their order. Along any dimension but the last, the
    matrix multiplies the unfolding (``matrix @ unfold(tensor, dim)``); along the last, the
    unfolding's transpose multiplies the matrix (``unfold(tensor, dim).t() @ matrix``), as
    Shampoo's reference computes its last dimension: the two agree for a symmetric matrix,
    and each rounds as the reference does."""
    dim = dim % tensor.dim()
    if dim == tensor.dim() - 1:
        product = unfold(tensor, dim).t() @ matrix
        return product.reshape(tensor.shape[:-1] + (matrix.size(1),))
    moved = tensor.movedim(dim, 0)
    product = matrix @ moved.reshape(moved.size(0), -1)
    return product.reshape((matrix.size(0),) + moved.shape[1:]).movedim(0, dim)
