"""Hand-written reference implementations of the optimizers that have no torch twin.

These are written straight from their sources (not from the specs the generator reads), so
that ``generated.WeirdDescent`` / ``generated.BertAdamW`` can be checked against an
independent implementation.  They are deliberately plain, for-loop, one-tensor-at-a-time code.

* ``CustomSGD`` -- the workshop notebook's first custom optimizer, ``param -= lr * grad``.
* ``WeirdDescent`` -- the "random coordinate descent" optimizer of a video tutorial.
* ``BertAdamW`` -- the ``AdamW`` of pytorch-transformers (BERT's Adam with decoupled
  weight decay applied *after* the Adam update, ``eps`` added outside the square root and no
  bias correction folded into ``eps``).
"""

from __future__ import annotations

import math

import torch
from torch.optim import Optimizer

__all__ = ["CustomSGD", "WeirdDescent", "BertAdamW"]


class CustomSGD(Optimizer):
    """The workshop's ``CustomSGD``, as its notebook writes it."""

    def __init__(self, params, lr=0.01):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        defaults = {"lr": lr}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            lr = group["lr"]
            for param in group["params"]:
                if param.grad is not None:
                    param -= lr * param.grad

        return loss


class WeirdDescent(Optimizer):
    """Random coordinate descent.

    Every ``step()``:

    1. ``self.state["step"]`` (an optimizer-level counter, not per parameter) becomes 1 on the
       first step and is incremented on every later step;
    2. ``c = 100`` if ``step % 100 == 0`` else ``1``;
    3. a param group is drawn uniformly, then a tensor within it uniformly; if that tensor has
       no gradient the draw (group, then tensor) is repeated; if no tensor has a gradient at
       all the step returns without touching anything else;
    4. one element of the tensor is drawn uniformly (flat index over ``p.numel()``), a mask of
       zeros with a single one there is built, and ``p.add_(grad * mask, alpha=-lr * c)``.

    All randomness comes from torch's default generator through
    ``torch.randint(n, (1,)).item()``, in the order: group index, tensor index (both repeated
    on every retry), element index.
    """

    def __init__(self, params, lr):
        defaults = dict(lr=lr)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        step = self.state.get("step", 0) + 1
        self.state["step"] = step
        c = 100 if step % 100 == 0 else 1

        if not any(p.grad is not None for g in self.param_groups for p in g["params"]):
            return loss

        while True:
            group_index = torch.randint(len(self.param_groups), (1,)).item()
            group = self.param_groups[group_index]
            tensor_index = torch.randint(len(group["params"]), (1,)).item()
            p = group["params"][tensor_index]
            if p.grad is not None:
                break

        element = torch.randint(p.numel(), (1,)).item()
        mask = torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
        mask[element] = 1
        mask = mask.view(p.shape)
        p.add_(p.grad * mask, alpha=-group["lr"] * c)
        return loss


class BertAdamW(Optimizer):
    """pytorch-transformers' ``AdamW`` (BERT Adam with decoupled weight decay).

    Per-parameter state: ``step`` (a Python int, 0 before the first update), ``exp_avg``,
    ``exp_avg_sq``.
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-6,
        weight_decay=0.0,
        correct_bias=True,
    ):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr} - should be >= 0.0")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(
                f"Invalid beta parameter: {betas[0]} - should be in [0.0, 1.0)"
            )
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(
                f"Invalid beta parameter: {betas[1]} - should be in [0.0, 1.0)"
            )
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps} - should be >= 0.0")
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            correct_bias=correct_bias,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError(
                        "Adam does not support sparse gradients, "
                        "please consider SparseAdam instead"
                    )

                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)

                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                beta1, beta2 = group["betas"]

                state["step"] += 1

                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])

                step_size = group["lr"]
                if group["correct_bias"]:
                    bias_correction1 = 1.0 - beta1 ** state["step"]
                    bias_correction2 = 1.0 - beta2 ** state["step"]
                    step_size = (
                        step_size * math.sqrt(bias_correction2) / bias_correction1
                    )

                p.addcdiv_(exp_avg, denom, value=-step_size)

                if group["weight_decay"] > 0.0:
                    p.add_(p, alpha=-group["lr"] * group["weight_decay"])

        return loss
