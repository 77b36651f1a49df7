"""Runtime of the generated modules for the language's matrix functions: what torch has no one call for.

Generated code imports these (and torch only): ``inverse_root(A, p)`` is the spec language's
``inverse_root``, the matrix ``A^(-1/p)`` of a symmetric positive semidefinite matrix, computed as
pytorch_optimizer computes Shampoo's preconditioners (through the singular value decomposition, in
float32, or float64 for float64 matrices, returned in the matrix's dtype), so that a spec written
from Shampoo matches its reference to the last rounding of the decomposition; ``unfold(x, k)`` and
``mode_product(x, M, k)`` are the tensor-algebra operations along one dimension of a tensor of
any rank (Shampoo's statistics and preconditioning, one dimension at a time);
``left_singular(A, r)`` and ``right_singular(A, r)`` are GaLore's truncated singular vectors (in
float32, as its reference computes them); ``gram``, ``eigenvectors``, ``qr``, ``reorder``,
``contract_first`` and ``rotate`` are SOAP's statistics, eigenbases and projection, each rounded
as its reference rounds it; ``zeros_along(x, k)`` and ``max_except(x, k)`` are SM3's
per-dimension accumulators and their reduction; ``merge_dims``, ``block_count``, ``block``,
``put_block``, ``one_shape`` and ``newton_inverse_root`` are Scalable Shampoo's shape interpretation, blocks
and coupled Newton inverse roots; ``by_rank``
splits the foreach path's lists by rank, for updates that loop over a parameter's dimensions.
"""

from __future__ import annotations

import functools

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


def _singular_vectors(matrix: Tensor) -> tuple[Tensor, Tensor]:
    # (GaLore's reference decomposes a float32 copy of any matrix that is not float32,
    # float64 included, and casts the vectors back: so do we, to round as it does)
    u, _, vh = torch.linalg.svd(
        matrix if matrix.dtype == torch.float32 else matrix.float(),
        full_matrices=False,
    )
    return u, vh


def left_singular(matrix: Tensor, rank: int) -> Tensor:
    """The first ``rank`` left singular vectors of ``matrix``, as columns (``U[:, :rank]``
    of its reduced SVD ``U diag(s) Vᵀ``; all of them where ``rank`` is larger), computed in
    float32 and returned in the matrix's dtype: GaLore's projection onto its gradient's
    leading column space."""
    u, _ = _singular_vectors(matrix)
    return u[:, :rank].to(matrix.dtype, copy=True)


def right_singular(matrix: Tensor, rank: int) -> Tensor:
    """The first ``rank`` right singular vectors of ``matrix``, as rows (``Vᵀ[:rank]``),
    computed in float32 and returned in the matrix's dtype: GaLore's projection onto its
    gradient's leading row space."""
    _, vh = _singular_vectors(matrix)
    return vh[:rank].to(matrix.dtype, copy=True)


def gram(tensor: Tensor, dim: int) -> Tensor:
    """The Gram matrix of the fibers of ``tensor`` along ``dim`` (``U @ U.T`` for ``U`` its
    mode-``dim`` unfolding), computed as pytorch_optimizer's SOAP computes its statistics:
    ``torch.tensordot`` over every other dimension, which rounds otherwise than the unfolding's
    product for a middle dimension; of a vector, its outer product."""
    others = [d for d in range(tensor.dim()) if d != dim % max(tensor.dim(), 1)]
    return torch.tensordot(tensor, tensor, dims=[others, others])


def eigenvectors(matrix: Tensor) -> Tensor:
    """The eigenvectors of a symmetric matrix, as columns, from the largest eigenvalue to the
    smallest: ``torch.linalg.eigh`` of ``matrix + 1e-30 I`` (SOAP's regularization of a
    statistic that may be singular), its columns reversed; in float64 (cast back) for a dtype
    eigh does not take, or where it does not converge, as SOAP's reference falls back.
    """

    def eigh(a: Tensor) -> Tensor:
        eye = torch.eye(a.size(0), device=a.device, dtype=a.dtype)
        return torch.linalg.eigh(a + 1e-30 * eye)[1]

    if matrix.dtype in (torch.float32, torch.float64):
        try:
            return torch.flip(eigh(matrix), dims=[1])
        except torch.linalg.LinAlgError:
            pass  # (no convergence: in float64, as SOAP's reference retries)
    # (bfloat16 and float16 have no eigh: in float64, cast back, as the reference's retry)
    return torch.flip(eigh(matrix.to(torch.float64)).to(matrix.dtype), dims=[1])


def qr(matrix: Tensor) -> Tensor:
    """The orthonormal factor ``Q`` of the reduced QR decomposition of ``matrix``, computed in
    float32 (``torch.linalg.qr`` has no bfloat16 form; SOAP's reference casts so for every
    dtype, float64 included) and returned in the matrix's dtype."""
    q, _ = torch.linalg.qr(matrix.to(torch.float32))
    return q.to(matrix.dtype)


def reorder(tensor: Tensor, dim: int, values: Tensor) -> Tensor:
    """``tensor`` with its slices along ``dim`` in the order that sorts ``values`` (of as many
    elements as ``tensor.size(dim)``) from the largest to the smallest."""
    order = torch.argsort(values.reshape(-1), descending=True)
    return tensor.index_select(dim, order)


def contract_first(tensor: Tensor, matrix: Tensor) -> Tensor:
    """``tensor``'s first dimension contracted with ``matrix``'s rows, the new dimension
    (``matrix``'s columns) last: ``torch.tensordot(tensor, matrix, dims=([0], [0]))``. Applied
    once for every dimension, it multiplies each by ``matrix.T`` in turn and leaves them in
    their order (SOAP's projection onto its eigenbases)."""
    return torch.tensordot(tensor, matrix, dims=([0], [0]))


def rotate(tensor: Tensor) -> Tensor:
    """``tensor`` with its first dimension moved last (a view): the step of
    :func:`contract_first` for a dimension that is left as it is."""
    return tensor.permute([*range(1, tensor.dim()), 0])


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


def zeros_along(tensor: Tensor, dim: int) -> Tensor:
    """Zeros of ``tensor.size(dim)`` entries along ``dim`` and of size 1 along every other
    dimension (a 0-d zero for a 0-d tensor), on the tensor's device, in its dtype: a vector
    that broadcasts against the tensor, SM3's accumulator for that dimension."""
    shape = [1] * tensor.dim()
    if shape:
        shape[dim] = tensor.size(dim)
    return torch.zeros(shape, dtype=tensor.dtype, device=tensor.device)


def max_except(tensor: Tensor, dim: int) -> Tensor:
    """The maximum over every dimension of ``tensor`` but ``dim``, the dimensions kept (of
    size 1), as SM3 reduces its update to each dimension's accumulator; a 0-d tensor, or one
    with ``dim`` its only dimension, is its own maximum."""
    others = _other_dims(tensor, dim)
    return tensor.amax(dim=others, keepdim=True) if others else tensor


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 where its dtype is narrower (float16, bfloat16), else itself: the
    precision pytorch_optimizer's OrthoGrad projects a gradient in (float64 stays float64).
    """
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.to(torch.float32)


def mean_except(tensor: Tensor, dim: int) -> Tensor:
    """The mean over every dimension of ``tensor`` but ``dim``, the dimensions kept (of size
    1), as gradient centralization takes each output channel's mean (pytorch_optimizer's
    ``centralize_gradient`` reduces over ``range(1, dim)``); a 0-d tensor, or one with ``dim``
    its only dimension, is its own mean (an empty ``dim=()`` would mean over everything).
    """
    others = _other_dims(tensor, dim)
    return tensor.mean(dim=others, keepdim=True) if others else tensor


def _other_dims(tensor: Tensor, dim: int) -> tuple[int, ...]:
    """The dimensions of ``tensor`` but ``dim`` (negative counted from the end)."""
    return tuple(d for d in range(tensor.dim()) if d != dim % max(tensor.dim(), 1))


def merge_dims(tensor: Tensor, limit: int) -> Tensor:
    """``tensor`` reshaped with its neighbouring dimensions merged while their product stays at
    most ``limit`` (Scalable Shampoo's shape interpretation, as pytorch_optimizer's
    ``merge_small_dims`` computes the shape): a dimension larger than ``limit`` closes the
    dimensions before it (a 1 if there are none: a vector of 1000 is seen as 1 x 1000 for a
    limit of 512), and ``(2, 3, 4)`` becomes ``(24,)`` for a limit of 24 or more. One merged
    dimension is a vector (a 0-d tensor a vector of one element); a view where ``reshape``
    can make one."""
    shape: list[int] = []
    product = 1
    for size in tensor.shape:
        product *= size
        if product > limit:
            shape.append(product // size)
            product = size
    shape.append(product)
    return tensor.reshape(shape if len(shape) > 1 else [-1])


def _splits(size: int, block_size: int) -> int:
    # (a dimension no longer than a block, or a block size of 0 or less, is not split)
    return 1 if block_size <= 0 or block_size >= size else -(-size // block_size)


def block_count(tensor: Tensor, block_size: int) -> int:
    """How many blocks ``tensor`` is cut into when each of its dimensions is split in pieces of
    ``block_size`` (the last piece the rest): the product over its dimensions of
    ``ceil(size / block_size)``."""
    count = 1
    for size in tensor.shape:
        count *= _splits(size, block_size)
    return count


def _block_slices(tensor: Tensor, index: int, block_size: int):
    # the block's start and length along each dimension: blocks are numbered with the last
    # dimension's pieces running fastest, as torch.split dimension after dimension lists them
    # (pytorch_optimizer's BlockPartitioner)
    parts = []
    for dim in reversed(range(tensor.dim())):
        size = tensor.size(dim)
        count = _splits(size, block_size)
        index, k = divmod(index, count)
        if count > 1:
            start = k * block_size
            parts.append((dim, start, min(block_size, size - start)))
    return parts


def block(tensor: Tensor, index: int, block_size: int) -> Tensor:
    """The ``index``-th block of ``tensor`` cut into blocks of ``block_size`` along each of its
    dimensions (see :func:`block_count`), as a view: Scalable Shampoo preconditions each block
    with statistics of its own."""
    for dim, start, length in _block_slices(tensor, index, block_size):
        tensor = tensor.narrow(dim, start, length)
    return tensor


def put_block(
    tensor: Tensor,
    index: int,
    block_size: int,
    value: Tensor,
    *,
    out: Tensor | None = None,
) -> Tensor:
    """``tensor`` with its ``index``-th block (:func:`block`) replaced by ``value``: a new
    tensor, or ``out`` (``tensor`` itself) written in place, as the generated code does for a
    tensor of its own: the blocks put back one by one make the whole."""
    if out is None:
        out = tensor.clone()
    elif out is not tensor:
        out.copy_(tensor)
    block(out, index, block_size).copy_(value)
    return out


def one_shape(tensors: list[Tensor]) -> bool:
    """Whether the tensors of a list all have one shape (False for an empty list)."""
    return bool(tensors) and all(t.shape == tensors[0].shape for t in tensors)


def _largest_eigenvalue(matrix: Tensor, iterations: int = 100) -> Tensor:
    # power iteration from a random start (drawn from torch's generator, as the reference
    # draws it), floored at 1e-16
    v = torch.randn(matrix.size(0), dtype=matrix.dtype, device=matrix.device)
    mv = torch.empty_like(v)
    tiny = torch.finfo(matrix.dtype).tiny
    for _ in range(iterations):
        torch.mv(matrix, v, out=mv)
        mv.div_(torch.linalg.vector_norm(mv).clamp_min_(tiny))
        v, mv = mv, v
    torch.mv(matrix, v, out=mv)
    return torch.dot(v, mv).clamp_min_(1e-16)


def newton_inverse_root(
    matrix: Tensor,
    power: int,
    ridge: float,
    iterations: int = 100,
    tolerance: float = 1e-3,
    growth: float = 1.2,
) -> Tensor:
    """``(matrix + ridge * λ_max I) ** (-1 / power)`` of a symmetric positive semidefinite
    matrix by the coupled Newton iteration of Guo & Higham (A Schur-Newton method for the
    matrix p-th root and its inverse, 2006), as Scalable Shampoo computes its preconditioners:
    λ_max by 100 power iterations from a random vector (torch's generator), the iteration
    stopped when ``‖M - I‖∞`` is at most ``tolerance``, or at the previous iterate when the
    error grows by more than ``growth``. A 1 x 1 matrix is ``(a + ridge * a) ** (-1 / p)``
    (``a`` floored at 1e-16 in the ridge), without a draw.
    """
    n = matrix.size(0)
    if n == 1:
        return (matrix + ridge * matrix.clamp_min(1e-16)).pow(-1.0 / power)
    identity = torch.eye(n, dtype=matrix.dtype, device=matrix.device)
    matrix = matrix + _largest_eigenvalue(matrix) * ridge * identity
    z = (1 + power) / (2 * torch.linalg.norm(matrix))
    root = identity * torch.pow(z, 1.0 / power)
    m = matrix * z
    alpha = -1.0 / power
    alpha_identity = (1.0 - alpha) * identity
    error = torch.dist(m, identity, p=torch.inf)
    m_i = torch.empty_like(m)
    new_m = torch.empty_like(m)
    new_root = torch.empty_like(root)
    for _ in range(iterations):
        torch.add(alpha_identity, alpha * m, out=m_i)
        torch.matmul(root, m_i, out=new_root)
        torch.matmul(torch.linalg.matrix_power(m_i, power), m, out=new_m)
        new_error = torch.dist(new_m, identity, p=torch.inf)
        diverged = new_error > error * growth
        # (a host-device sync per iteration: the iteration count depends on the values)
        if diverged or new_error <= tolerance:
            return torch.where(diverged, root, new_root)
        root.copy_(new_root)
        m, new_m = new_m, m
        error = new_error
    return root


def by_rank(function, lists: list[list], **kwargs) -> None:
    """``function`` (the foreach path's functional) called once for each rank of the
    parameters (``lists[0]``), in the order the ranks first appear, on the items of ``lists``
    of those parameters: for an update that loops over a parameter's dimensions or keeps a list
    for each (``range(dim(param))``), ``dim(param)`` is then one number in each call. A list of
    another length than the parameters' (an empty one: a state the hyperparameters turned off)
    is passed on as it is; what a call puts in its part of a list (a state the step makes)
    is put back in the whole list. (A total over all parameters, `state optimizer ...:
    total`, is then summed rank by rank: within its rounding of the for-loop's order.)
    """
    params = lists[0]
    ranks: dict[int, list[int]] = {}
    for i, p in enumerate(params):
        ranks.setdefault(p.dim(), []).append(i)
    for indices in ranks.values():
        parts = [
            [lst[i] for i in indices] if len(lst) == len(params) else lst
            for lst in lists
        ]
        function(*parts, **kwargs)
        for lst, part in zip(lists, parts):
            if part is not lst:
                for i, value in zip(indices, part):
                    lst[i] = value


# -- PSGD Kron's Kronecker-factored preconditioner -------------------------------------------------
# A tensor of order n has one factor per dimension: a dense (upper-triangular) matrix, or the
# diagonal of one kept as a vector; a 0-d tensor has one 0-d factor. The reference contracts the
# factors with the tensor in single einsum calls whose expressions it builds from the factors'
# kinds; torch.einsum contracts its operands in an order of its own, so the functions below build
# the same expressions and call it alike, which is what makes a spec round as the reference does.

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@functools.lru_cache(maxsize=None)
def _kron_expressions(dense: tuple[bool, ...]) -> tuple[str, tuple[str, ...], str]:
    """The einsum expressions of a tensor whose factors are dense (True) or diagonal: the
    factors applied to it, the Gram statistic of each dimension, and the preconditioner
    ``QᴴQ`` applied to it (pytorch_optimizer's initialize_q_expressions, letter for letter).
    """
    if not dense:  # a 0-d tensor
        return ",->", (",->",), ",,->"
    order = len(dense)
    if order > 13:
        raise ValueError(f"a tensor of {order} dimensions: einsum runs out of letters")
    letters = _LETTERS
    apply_in, apply_last, apply_out = [], "", ""
    grams = []
    left, right, middle, out = [], [], "", ""
    for i, full in enumerate(dense):
        a, b, c = letters[i], letters[i + 13], letters[i + 26]
        piece1 = "".join(b if j == i else letters[j] for j in range(order))
        if full:
            piece2 = "".join(c if j == i else letters[j] for j in range(order))
            apply_in.append(a + b)
            apply_last += b
            apply_out += a
            grams.append(f"{piece1},{piece2}->{b}{c}")
            left.append(a + b)
            right.append(a + c)
            middle += c
            out += b
        else:
            apply_in.append(a)
            apply_last += a
            apply_out += a
            grams.append(f"{piece1},{piece1}->{b}")
            left.append(b)
            right.append(b)
            middle += b
            out += b
    apply = ",".join(apply_in) + f",{apply_last}->{apply_out}"
    precondition = ",".join(left) + "," + ",".join(right) + f",{middle}->{out}"
    return apply, tuple(grams), precondition


def _kinds(factors: list[Tensor], tensor: Tensor) -> tuple[bool, ...]:
    return tuple(q.dim() >= 2 for q in factors) if tensor.dim() > 0 else ()


def identity_factor(tensor: Tensor, dim: int, dense: bool, dtype=None) -> Tensor:
    """The identity along dimension ``dim`` of ``tensor``: the ``size(dim)``-square identity
    matrix where ``dense``, else its diagonal (a vector of ones); of a 0-d tensor, a 0-d one.
    On the tensor's device, in ``dtype`` (None: the tensor's)."""
    dtype = dtype or tensor.dtype
    if tensor.dim() == 0:
        return torch.ones_like(tensor, dtype=dtype)
    size = tensor.size(dim)
    if dense:
        return torch.eye(size, dtype=dtype, device=tensor.device)
    return torch.ones(size, dtype=dtype, device=tensor.device)


def kron_apply(factors: list[Tensor], tensor: Tensor) -> Tensor:
    """``Q x``: each factor applied along its dimension (a dense factor multiplies the fibers,
    a diagonal one scales them), in one einsum as the reference contracts it."""
    expression = _kron_expressions(_kinds(factors, tensor))[0]
    return torch.einsum(expression, *factors, tensor)


def kron_precondition(factors: list[Tensor], tensor: Tensor) -> Tensor:
    """``Qᴴ Q x``: the preconditioner applied along every dimension, in one einsum as the
    reference contracts it (the factors' conjugates, then the factors, then the tensor).
    """
    expression = _kron_expressions(_kinds(factors, tensor))[2]
    return torch.einsum(expression, *[q.conj() for q in factors], *factors, tensor)


def kron_gram(tensor: Tensor, factors: list[Tensor], dim: int) -> Tensor:
    """The statistic of dimension ``dim`` for its factor: the Gram matrix of ``tensor``'s
    fibers along it (``X₍ₖ₎ X₍ₖ₎ᴴ``) for a dense factor, the sum of squared magnitudes over the
    other dimensions for a diagonal one; the einsum of the reference."""
    expression = _kron_expressions(_kinds(factors, tensor))[1][dim]
    return torch.einsum(expression, tensor, tensor.conj())


def kron_solve(factors: list[Tensor], tensor: Tensor) -> Tensor:
    """``Q⁻ᴴ x``: ``tensor`` multiplied by the inverse of each factor along its dimension from
    the right (a triangular solve in float32 for a dense factor, a division for a diagonal
    one), taking the dimensions in turn through the reference's transpositions."""
    order = tensor.dim()
    dims = list(range(order))
    out = torch.permute(tensor.conj(), dims[1:] + dims[:1])
    for i, q in enumerate(factors):
        if q.dim() < 2:
            out = out / q
        else:
            flat = out.to(torch.float32).reshape(-1, out.size(-1))
            solved = torch.linalg.solve_triangular(
                q.to(torch.float32), flat, upper=True, left=False
            )
            out = solved.reshape_as(out).to(out.dtype)
        if i < order - 1:
            out = torch.transpose(out, i, order - 1)
    return out


def norm_lower_bound(matrix: Tensor) -> Tensor:
    """A lower bound of the spectral norm of a matrix (of a vector, its norm), as PSGD
    estimates it: the matrix scaled by its largest magnitude, then the larger of two one-step
    power estimates from its heaviest row and column."""
    if matrix.dim() < 2:
        return torch.linalg.vector_norm(matrix)
    max_abs = torch.max(torch.abs(matrix))
    tiny = torch.finfo(matrix.real.dtype).tiny
    a = matrix / torch.where(max_abs > 0, max_abs, 1.0)
    aa = torch.real(a * a.conj())
    value0, i = torch.max(torch.sum(aa, dim=0), 0)
    value1, j = torch.max(torch.sum(aa, dim=1), 0)
    x0 = a.index_select(1, i.reshape(1)).flatten().conj() @ a
    bound0 = torch.linalg.vector_norm(
        (x0 / torch.linalg.vector_norm(x0).clamp_min(tiny)) @ a.H
    )
    x1 = a @ a.index_select(0, j.reshape(1)).flatten().conj()
    bound1 = torch.linalg.vector_norm(
        a.H @ (x1 / torch.linalg.vector_norm(x1).clamp_min(tiny))
    )
    return max_abs * torch.where(value0 > value1, bound0, bound1)


def norms_geometric_mean(factors: list[Tensor]) -> Tensor:
    """The geometric mean of the factors' largest magnitudes, ``(Π ‖Q_k‖∞)^(1/n)``, a 0-d
    tensor (PSGD's balancing of the factors' scales)."""
    norms = torch.stack([q.norm(float("inf")) for q in factors])
    return norms.prod() ** (1 / len(factors))


def host_uniform() -> float:
    """A number drawn uniformly from [0, 1) by numpy's global generator (``np.random.random``):
    where a reference draws a host decision so (PSGD Kron's balancing), a run seeded with
    ``np.random.seed`` then decides alike."""
    import numpy as np  # (torch's optional dependency: imported where a spec draws from it)

    return float(np.random.random())


def largest_dim(tensor: Tensor) -> int:
    """The dimension of the largest size, the last of them where several have it (the one
    numpy's ``argsort(shape)[::-1][0]`` picks, its sort being stable for so few items); 0 for
    a 0-d tensor."""
    shape = list(tensor.shape)
    if not shape:
        return 0
    largest = max(shape)
    return max(k for k, size in enumerate(shape) if size == largest)


def max_size_except(tensor: Tensor, dim: int) -> int:
    """The largest size of the dimensions other than ``dim`` (0 where there is none)."""
    dim = dim % max(tensor.dim(), 1)
    return max((s for k, s in enumerate(tensor.shape) if k != dim), default=0)


def max_abs(tensor: Tensor) -> Tensor:
    """The largest magnitude of the entries, a 0-d tensor (``tensor.norm(inf)``)."""
    return tensor.norm(float("inf"))
