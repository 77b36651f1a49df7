"""Runtime of the generated modules for FSDP2's sharded parameters (DTensor), as
generator.runtime.kernels is for torch.compile: imported by the generated code, never by the generator.

A DTensor split across ranks holds one shard of a parameter. An elementwise update of the shard is
the shard of the update, so most optimizers need nothing; one that reads a parameter's whole
tensor (a norm, a mean over a dimension, a matrix product) refuses a sharded parameter
(``_is_sharded``), and ``torch._foreach_copy_``, which DTensor does not implement, becomes one copy
per tensor (``_copy_all``).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _copy_all(dst: list[Tensor], src: list[Tensor]) -> None:
    """``torch._foreach_copy_``, which DTensor (FSDP2's shards) does not implement: for those,
    one copy per tensor."""
    if dst and hasattr(dst[0], "placements"):
        for d, s in zip(dst, src, strict=True):
            d.copy_(s)
    else:
        torch._foreach_copy_(dst, src)


def _is_sharded(p: Tensor) -> bool:
    """Whether ``p`` is a DTensor split across ranks (FSDP2's shards), not a whole tensor."""
    placements = getattr(
        p, "placements", None
    )  # (torch.distributed.tensor.DTensor only)
    return placements is not None and not all(pl.is_replicate() for pl in placements)
