"""Runtime of the generated modules for estimates made over every parameter at once.

A per-parameter update sees one parameter; a Hessian-vector product differentiates the gradients
of all of them together. ``hutchinson_`` is the spec language's ``hutchinson(n, distribution)``,
assigned to a per-parameter state in ``update optimizer:``: the generated ``step()`` calls it
before any group steps, and the update then reads the state as any other. It follows
pytorch_optimizer's AdaHessian (``BaseOptimizer.zero_hessian`` and
``compute_hutchinson_hessian``): the same parameters, in the same order, the probes drawn from
torch's generator as it draws them, so that a seeded run matches it.
"""

from __future__ import annotations

import torch

DISTRIBUTIONS = ("gaussian", "rademacher")


def hutchinson_(
    param_groups: list[dict],
    state,
    key: str,
    num_samples: int,
    distribution: str,
) -> None:
    """Hutchinson's estimate of the Hessian's diagonal, the mean of ``z ⊙ Hz`` over
    ``num_samples`` probes ``z`` (Rademacher ±1 or standard normal), put in
    ``state[p][key]`` (made as zeros, or zeroed) for every parameter of every group that has a
    dense gradient (in the dtype a group's precision policy stores the state in, else the
    parameter's); one Hessian-vector product over all of them per probe. The gradients must
    carry their graph (``loss.backward(create_graph=True)``)."""
    if distribution not in DISTRIBUTIONS:
        raise NotImplementedError(
            f"hessian with distribution {distribution} is not implemented."
        )
    params = []
    for group in param_groups:
        # (a precision policy's storage dtype for the state, as for any state it makes)
        dtype = (group.get("state_dtype") or {}).get(key)
        for p in group["params"]:
            if not p.requires_grad or p.grad is None or p.grad.is_sparse:
                continue
            params.append(p)
            if state[p].get(key) is None:
                state[p][key] = torch.zeros_like(
                    p, dtype=dtype, memory_format=torch.preserve_format
                )
            else:
                state[p][key].zero_()
    if not params:
        return
    grads = [p.grad for p in params]
    if not all(g.requires_grad for g in grads):
        # (autograd's own error names neither the cause nor the fix)
        raise RuntimeError(
            "the Hessian estimate differentiates the gradients, and a gradient has no "
            "graph: call loss.backward(create_graph=True) before step() (or give step() a "
            "closure that does)"
        )
    for i in range(num_samples):
        if distribution == "rademacher":
            probes = [torch.randint_like(p, 0, 2) * 2.0 - 1.0 for p in params]
        else:
            probes = [torch.randn_like(p) for p in params]
        products = torch.autograd.grad(
            grads, params, grad_outputs=probes, retain_graph=i < num_samples - 1
        )
        for product, z, p in zip(products, probes, params):
            state[p][key].addcmul_(product, z, value=1.0 / num_samples)
