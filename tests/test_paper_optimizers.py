"""The optimizers generated from papers' specs against their independent implementations in
``pytorch_optimizer`` (issue 5), parametrized over the table in ``paper_optim_db.py`` (issue 19:
one entry per optimizer, the tests generic), on the harness of ``paper_reference.py``.

The generic tests read the table's fields; the few behaviours of one optimizer that do not fit
a field are in the ``Test<Name>`` classes at the end (named so that ``pytest -k <Name>``, as
tests/tools/mutants.py runs it, selects them with the entry's cases).
"""

from __future__ import annotations

import copy
import inspect
import re

import pytest
import torch

import paper_reference
from paper_optim_db import BY_NAME, PAPER_OPTIMIZERS, PaperOptimizerInfo, kwargs_id
from paper_reference import (
    TOL,
    assert_implementations_agree,
    assert_matches_reference,
    close,
    assert_same_signature,
    assert_same_validation_errors,
    generated,
    reference,
)
from generator.verify.problems import (
    clone_params,
    gradients_for_step,
    make_initial_params,
    make_param_groups,
    paper_group2,
)


def _cases(per_entry):
    """pytest params ``(info, *values)`` with ids ``Name-<id>``, for each entry's
    ``per_entry(info) -> [(id, values...)]``."""
    out = []
    for info in PAPER_OPTIMIZERS:
        for case_id, *values in per_entry(info):
            out.append(
                pytest.param(
                    info, *values, id=f"{info.name}-{case_id}" if case_id else info.name
                )
            )
    return out


def _entries(having=lambda info: True):
    return [
        pytest.param(info, id=info.name) for info in PAPER_OPTIMIZERS if having(info)
    ]


def _grid(info):
    for kwargs in info.grid:
        yield kwargs_id(kwargs), kwargs, None
    for shaped in info.other_shapes:
        for kwargs in shaped.grid:
            yield f"on_{shaped.name}-{kwargs_id(kwargs)}", kwargs, shaped.shapes


# -- the table's tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("info,kwargs,shapes", _cases(_grid))
def test_matches_pytorch_optimizer(info: PaperOptimizerInfo, kwargs, shapes):
    """Parameters (and the state of ``state_keys``) equal the reference's after each of 20
    steps, float64, within a relative 1e-10."""
    assert_matches_reference(
        info.module,
        info.name,
        kwargs,
        state_keys=dict(info.state_keys),
        ref_kwargs=info.reference_kwargs(kwargs) if info.reference_overrides else None,
        reference_name=info.reference_name,
        shapes=shapes,
    )


@pytest.mark.parametrize("info", _entries())
def test_state_keys_name_state_both_keep(info: PaperOptimizerInfo):
    """Every key of ``state_keys`` is in the state of both classes for some grid item (after a
    step of the harness's problem): the comparison skips a key neither has, so a misspelt
    key would otherwise compare nothing."""
    ours, theirs = set(), set()
    for _, kwargs, shapes in _grid(info):
        for keys, cls, kw in (
            (ours, generated(info.module, info.name), kwargs),
            (theirs, reference(info.reference_name), info.reference_kwargs(kwargs)),
        ):
            _, opt = paper_reference.run(cls, kw, torch.float64, 0, 1, shapes=shapes)
            keys.update(k for s in opt.state.values() if isinstance(s, dict) for k in s)

    def kept(
        v: str,
    ) -> bool:  # (`pre_cond_*`: the reference's pre_cond_0, pre_cond_1, ...)
        return f"{v[:-1]}0" in theirs if v.endswith("*") else v in theirs

    missing = {k: v for k, v in info.state_keys.items() if k not in ours or not kept(v)}
    assert not missing, (
        f"{info.name}: state_keys {missing} never in the state (ours {sorted(ours)}, "
        f"reference {sorted(theirs)})"
    )


@pytest.mark.parametrize(
    "info,kwargs",
    _cases(lambda info: [(kwargs_id(kw), kw) for kw in info.agreement]),
)
def test_foreach_and_fused_equal_the_for_loop(info: PaperOptimizerInfo, kwargs):
    # (fused where the class has it: a spec with lists, such as AggMo's, is refused it)
    fused = "fused" in inspect.signature(generated(info.module, info.name)).parameters
    assert_implementations_agree(info.module, info.name, kwargs, fused=fused)


@pytest.mark.parametrize("info", _entries())
def test_signature_matches_pytorch_optimizer(info: PaperOptimizerInfo):
    """Same arguments, order and defaults (schedules compared by value); with
    ``added_defaults``, ``defaults`` is the reference's, in its order, then those."""
    assert_same_signature(
        info.module,
        info.name,
        reference_name=info.reference_name,
        group_options=info.group_options,
        schedules=dict(info.schedule_defaults),
    )
    if info.added_defaults is not None:
        ours, theirs = (
            list(cls([torch.zeros(2, requires_grad=True)]).defaults)
            for cls in (
                generated(info.module, info.name),
                reference(info.reference_name),
            )
        )
        want = theirs + list(info.added_defaults)
        assert ours == want, f"{info.name}.defaults: {ours}, expected {want}"


@pytest.mark.parametrize(
    "info,kwargs",
    _cases(lambda info: [(kwargs_id(kw), kw) for kw in info.bad_arguments]),
)
def test_rejects_invalid_arguments_as_pytorch_optimizer(
    info: PaperOptimizerInfo, kwargs
):
    """Refused by both, with the reference's message."""
    assert_same_validation_errors(
        info.module, info.name, [kwargs], reference_name=info.reference_name
    )


def _attempt(cls, refusal, extra=None):
    p = torch.zeros(refusal.shape, dtype=refusal.dtype, requires_grad=True)
    if refusal.at_step:
        p.grad = (
            torch.zeros(refusal.shape, dtype=refusal.dtype).to_sparse()
            if refusal.sparse_grad
            else torch.ones_like(p)
        )
    params = [{"params": [p], **refusal.group}] if refusal.group else [p]
    opt = cls(params, **refusal.kwargs, **(extra or {}))
    if refusal.at_step:
        opt.step()


@pytest.mark.parametrize(
    "info,refusal", _cases(lambda info: [(r.name, r) for r in info.refusals])
)
def test_refuses_what_it_cannot_express(info: PaperOptimizerInfo, refusal):
    """An input the generated class refuses (where the reference runs it, or refuses it with
    a message of its own), with an error that says why."""
    cls = generated(info.module, info.name)
    what = (
        f"{info.name}: {refusal.name} ({refusal.kwargs or 'no options'}, "
        f"{refusal.dtype} {refusal.shape}{', group ' + str(refusal.group) if refusal.group else ''}"
        f"{', at the step' if refusal.at_step else ''})"
    )
    try:
        _attempt(cls, refusal)
    except refusal.error as error:
        if refusal.match is not None and not re.search(refusal.match, str(error)):
            raise AssertionError(
                f"{what}: {type(error).__name__}({str(error)!r}) does not match "
                f"{refusal.match!r}"
            ) from error
    else:
        raise AssertionError(
            f"{what}: accepted; expected {refusal.error.__name__}"
            f"{' matching ' + repr(refusal.match) if refusal.match else ''}"
        )
    if refusal.reference_accepts:
        _attempt(reference(info.reference_name), refusal)
    if refusal.accepted_with is not None:
        _attempt(cls, refusal, refusal.accepted_with)


@pytest.mark.parametrize("info", _entries(lambda info: info.step_count is not None))
def test_counts_steps_as_pytorch_optimizer(info: PaperOptimizerInfo):
    """Where the step count lives (``group['step']`` or the optimizer's state), equal to the
    reference's; no per-parameter ``step`` in either."""
    count = info.step_count
    classes = (
        ("ours", generated(info.module, info.name), dict(count.kwargs)),
        (
            "reference",
            reference(info.reference_name),
            info.reference_kwargs(count.kwargs),
        ),
    )
    if count.kept_in == "optimizer":
        counts = {}
        for who, cls, kwargs in classes:
            p = torch.zeros(3, requires_grad=True)
            opt = cls([p], **kwargs)
            for _ in range(4):
                p.grad = torch.ones(3)
                opt.step()
            counts[who] = int(opt.state[count.counter].item())
            assert (
                "step" not in opt.state[p]
            ), f"{info.name} ({who}): a per-parameter step"
        assert (
            counts["ours"] == counts["reference"] == 4
        ), f"{info.name}: state[{count.counter!r}] after 4 steps: {counts}, expected 4"
        return
    steps, runs = {}, {}
    for who, cls, kwargs in classes:
        params, opt = paper_reference.run(cls, kwargs, torch.float64, 0, 6)
        runs[who] = params, opt
        steps[who] = [g["step"] for g in opt.param_groups]
        # (the optimizer's own values, Kron's update_counter, sit beside the parameters'
        # state dicts)
        assert not any(
            "step" in s for s in opt.state.values() if isinstance(s, dict)
        ), f"{info.name} ({who}): a per-parameter step"
    assert (
        steps["ours"] == steps["reference"] == [6, 6]
    ), f"{info.name}: group['step'] after 6 steps: {steps}, expected [6, 6]"
    params, ours = runs["ours"]
    for key, want in count.per_param.items():
        got = tuple(
            float(ours.state[p][key])  # (a 0-d tensor, or a number `as number`)
            for p in params
        )
        assert got == want, f"{info.name}: per-parameter {key!r} {got}, expected {want}"


@pytest.mark.parametrize(
    "info,problem,kwargs",
    _cases(
        lambda info: [
            (f"{problem.name}-{kwargs_id(kw)}", problem, kw)
            for problem in info.problems
            for kw in problem.grid
        ]
    ),
)
def test_matches_pytorch_optimizer_on_its_own_problem(info, problem, kwargs):
    """An edge case the harness's problem does not reach (the problem's ``why``): the
    parameters after the last step equal the reference's."""
    runs = []
    for cls in (generated(info.module, info.name), reference(info.reference_name)):
        gen = torch.Generator().manual_seed(problem.seed)
        torch.manual_seed(
            problem.seed
        )  # (what the optimizer draws: alike on each side)
        params = problem.params(gen)
        opt = cls(params, **kwargs)
        for step in range(problem.steps):
            problem.set_grads(step, params, gen)
            opt.step()
        runs.append([p.detach().clone() for p in params])
    for i, (ours, theirs) in enumerate(zip(*runs)):
        torch.testing.assert_close(
            ours,
            theirs,
            rtol=problem.rtol,
            atol=problem.atol,
            msg=lambda m, i=i: f"{info.name}({kwargs}), {problem.why}; param #{i}: {m}",
        )


# -- what one optimizer does that no field holds ----------------------------------------------


class TestAdaBound:
    info = BY_NAME["AdaBound"]

    def _run_with_lr_changes(self, cls, start_lr, warm_up=False):
        """Two groups (the second at half the lr); lr raised from 0 at step 2 when
        ``start_lr`` is 0, halved at step 10, and with ``warm_up`` a LinearLR scheduler
        (which sets lr when it is made, before the first step)."""
        params = clone_params(make_initial_params(torch.float64, 7))
        opt = cls(
            [{"params": params[:2]}, {"params": params[2:], "lr": start_lr / 2}],
            lr=start_lr,
            final_lr=1e-2,
            gamma=1.0,
        )
        sched = (
            torch.optim.lr_scheduler.LinearLR(opt, 0.25, total_iters=8)
            if warm_up
            else None
        )
        for step in range(20):
            if step == 2 and start_lr == 0.0:
                for group, lr in zip(opt.param_groups, (1e-2, 5e-3)):
                    group["lr"] = lr
            if step == 10:
                for group in opt.param_groups:
                    group["lr"] *= 0.5
            for p, g in zip(params, gradients_for_step(step, params, 7)):
                p.grad = g
            opt.step()
            if sched is not None:
                sched.step()
        return params, opt

    def _both(self, start_lr, warm_up=False):
        ref = self._run_with_lr_changes(
            reference(self.info.reference_name), start_lr, warm_up
        )
        ours = self._run_with_lr_changes(
            generated(self.info.module, self.info.name), start_lr, warm_up
        )
        return ours, ref

    @staticmethod
    def _assert_params_close(ours, ref):
        for i, (a, e) in enumerate(zip(ours, ref)):
            torch.testing.assert_close(
                a.detach(),
                e.detach(),
                rtol=1e-10,
                atol=1e-14,
                msg=lambda m, i=i: f"AdaBound, param #{i}: {m}",
            )

    @pytest.mark.parametrize("start_lr", [1e-2, 0.0])
    def test_bounds_follow_a_changed_lr(self, start_lr):
        """lr changed mid-run (as a scheduler would): the bounds scale by lr / base_lr, as the
        reference's do. A group built with lr 0 takes the first positive lr it steps with.
        """
        (ours, opt), (ref, ref_opt) = self._both(start_lr)
        steps = [g["step"] for g in opt.param_groups]
        ref_steps = [g["step"] for g in ref_opt.param_groups]
        assert steps == ref_steps, f"group['step'] {steps}, reference {ref_steps}"
        base_lrs = [g["base_lr"] for g in opt.param_groups]
        assert (
            base_lrs == ref_opt.base_lrs
        ), f"base_lr {base_lrs}, reference {ref_opt.base_lrs}"
        self._assert_params_close(ours, ref)

    def test_base_lr_is_the_lr_it_was_built_with(self):
        """A warm-up scheduler sets lr before the first step; base_lr is still the lr the
        optimizer was built with (an `eager` group counter), as the reference's base_lrs.
        """
        (ours, opt), (ref, ref_opt) = self._both(1e-2, warm_up=True)
        assert ref_opt.base_lrs == [
            1e-2,
            5e-3,
        ], f"reference base_lrs {ref_opt.base_lrs}"
        base_lrs = [g["base_lr"] for g in opt.param_groups]
        assert (
            base_lrs == ref_opt.base_lrs
        ), f"base_lr {base_lrs}, reference {ref_opt.base_lrs}"
        self._assert_params_close(ours, ref)


class TestLaProp:
    info = BY_NAME["LaProp"]

    def test_a_changed_lr_is_not_followed(self):
        """Equal to the reference until lr changes (step 3 here); after that the reference's
        exp_avg_lr_1 / lr is no longer 1 - beta1^k (the table's notes)."""
        runs = []
        for cls, kwargs in (
            (generated(self.info.module, self.info.name), {}),
            (reference(self.info.reference_name), self.info.reference_kwargs({})),
        ):
            params = [
                p.detach().clone().requires_grad_()
                for p in make_initial_params(torch.float64, 0)
            ]
            opt = cls(params, lr=1e-2, **kwargs)
            trace = []
            for step in range(5):
                if step == 3:
                    opt.param_groups[0]["lr"] = 5e-3
                for p, g in zip(params, gradients_for_step(step, params, 0)):
                    p.grad = g
                opt.step()
                trace.append(torch.cat([p.detach().flatten() for p in params]))
            runs.append(trace)
        for step, (a, e) in enumerate(zip(*runs)):
            close = torch.allclose(a, e, rtol=1e-10, atol=1e-14)
            assert close == (step < 3), (
                f"step {step}: {'equal to' if close else 'apart from'} the reference, "
                f"expected {'equal' if step < 3 else 'apart'} (lr changes at step 3)"
            )


class TestMARS:
    info = BY_NAME["MARS"]

    def test_shampoo_fused_equals_the_for_loop(self):
        """Shampoo's Newton-Schulz iterations (a `repeat` of matrix products in bfloat16)
        unrolled in the kernel, which takes the matrices unflattened. The orthogonalisation runs
        in bfloat16 in both paths, and inductor rounds fused bfloat16 arithmetic once where
        eager rounds after each operation: over six steps the displacements agree within four
        bfloat16 ulps (4 * 2^-7 relative; a wrong formula is off by O(1)), the moments,
        computed in float32 before the orthogonalisation, to float32 rounding."""
        cls = generated(self.info.module, self.info.name)
        gen = torch.Generator().manual_seed(5)
        shapes = [(5, 4), (3, 6), (4,)]
        start = [torch.randn(s, generator=gen) for s in shapes]
        grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(6)]
        runs = []
        for fused in (False, True):
            params = [t.clone().requires_grad_(True) for t in start]
            opt = cls(params, lr=1e-2, mars_type="shampoo", fused=fused, foreach=False)
            for gs in grads:
                for p, g in zip(params, gs):
                    p.grad = g.clone()
                opt.step()
            runs.append((params, opt))
        (loop, opt_loop), (fused, opt_fused) = runs
        for i, (a, b) in enumerate(zip(loop, fused)):
            moved = (b.detach() - start[i]).abs().max()
            diff = (a.detach() - b.detach()).abs().max()
            assert (
                diff <= 4 * 2**-7 * moved
            ), f"param #{i}: {diff:.3e} apart, moved {moved:.3e}"
            torch.testing.assert_close(
                opt_fused.state[b]["exp_avg"],
                opt_loop.state[a]["exp_avg"],
                rtol=2e-6,
                atol=1e-6,
                msg=lambda m, i=i: f"param #{i}, state 'exp_avg': {m}",
            )


class TestProdigy:
    info = BY_NAME["Prodigy"]

    def cls(self):
        return generated(self.info.module, self.info.name)

    def test_keeps_d_and_the_sums_where_the_reference_does(self):
        """d, d_max and step in every group (equal across groups); the sums in the optimizer's
        state, equal to those the reference keeps in its groups."""
        kwargs = {"weight_decay": 0.1, "fixed_decay": True}
        _, ours = paper_reference.run(self.cls(), kwargs, torch.float64, 0, 8)
        _, theirs = paper_reference.run(
            reference(self.info.reference_name), kwargs, torch.float64, 0, 8
        )
        for key in ("step", "d", "d_max"):
            got = [g[key] for g in ours.param_groups]
            want = [g[key] for g in theirs.param_groups]
            assert got == want, f"group[{key!r}]: {got}, reference {want}"
        assert ours.param_groups[0]["d"] > 1e-6, "d never grew from d0"
        for key in ("d_numerator", "d_de_nom"):
            got, want = ours.state[key], theirs.param_groups[0][key]
            assert torch.equal(
                got, want
            ), f"state[{key!r}] {got}, reference group's {want}"

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"bias_correction": True},
            {"eps": None},
            {"growth_rate": 1.1, "bias_correction": True},
            {"eps": None, "weight_decay": 0.01, "beta3": 0.9},
        ],
        ids=kwargs_id,
    )
    def test_estimates_d_on_a_quadratic_as_pytorch_optimizer(self, kwargs):
        """On a badly scaled quadratic (gradients pointing at a solution far from x0) d grows
        by orders of magnitude; the parameters and d agree with the reference at every step.
        """
        torch.manual_seed(0)
        scales = [torch.logspace(-2, 1, 12).reshape(3, 4), torch.logspace(0, -3, 5)]
        targets = [torch.randn(3, 4, dtype=torch.float64) * 3, torch.randn(5).double()]
        runs = []
        for cls in (reference(self.info.reference_name), self.cls()):
            params = [torch.zeros_like(t, requires_grad=True) for t in targets]
            opt = cls([{"params": params[:1]}, {"params": params[1:]}], **kwargs)
            seen = []
            for _ in range(40):
                for p, a, t in zip(params, scales, targets):
                    p.grad = a.double() * (p.detach() - t)
                opt.step()
                seen.append(
                    ([p.detach().clone() for p in params], opt.param_groups[1]["d"])
                )
            runs.append(seen)
        for step, ((theirs, d_ref), (ours, d)) in enumerate(zip(*runs)):
            assert d == d_ref, f"{kwargs}, step {step}: d {d}, reference {d_ref}"
            for i, (a, e) in enumerate(zip(ours, theirs)):
                close(a, e, TOL, f"Prodigy({kwargs})", f"param #{i}", step)
        assert runs[1][-1][1] > 10 * 1e-6, f"d only reached {runs[1][-1][1]}"

    def test_stops_before_the_update_when_the_denominator_is_zero(self):
        """Zero gradients from the start: s stays 0, the step ends before touching a
        parameter, as the reference's does."""
        params = [torch.randn(3, requires_grad=True) for _ in range(2)]
        before = [p.detach().clone() for p in params]
        opt = self.cls()(params, weight_decay=0.5)
        for p in params:
            p.grad = torch.zeros(3)
        opt.step()
        moved = [
            i
            for i, (p, b) in enumerate(zip(params, before))
            if not torch.equal(p.detach(), b)
        ]
        assert not moved, f"params #{moved} moved"
        group = opt.param_groups[0]
        assert (group["d"], group["step"]) == (
            1e-6,
            2,
        ), f"d {group['d']}, step {group['step']}"

    def test_state_dict_round_trip_continues_identically(self):
        cls = self.cls()
        params_a, opt_a = paper_reference.run(cls, {"d0": 1e-3}, torch.float64, 3, 5)
        params_b = [p.detach().clone().requires_grad_(True) for p in params_a]
        opt_b = cls(make_param_groups(params_b, paper_group2({})), d0=1e-3)
        # (a deep copy: a state_dict holds the optimizer's own tensors)
        opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
        for step in range(5, 9):
            grads = gradients_for_step(step, params_a, 3)
            for pa, pb, g in zip(params_a, params_b, grads):
                pa.grad = None if g is None else g.clone()
                pb.grad = None if g is None else g.clone()
            opt_a.step()
            opt_b.step()
        for i, (a, b) in enumerate(zip(params_a, params_b)):
            assert torch.equal(a, b), f"param #{i} differs after the round trip"


class TestScheduleFreeAdamW:
    info = BY_NAME["ScheduleFreeAdamW"]
    GROUP_KEYS = ("step", "weight_sum", "lr_max", "train_mode")

    def cls(self):
        return generated(self.info.module, self.info.name)

    @pytest.mark.parametrize(
        "kwargs,dtype",
        [
            ({}, torch.float64),
            (
                {
                    "lr": 1e-2,
                    "betas": (0.5, 0.99),
                    "weight_decay": 0.1,
                    "warmup_steps": 4,
                },
                torch.float64,
            ),
            # complex parameters run on their real views, in the step and in eval()/train()
            ({"lr": 1e-2, "ams_bound": True}, torch.complex128),
        ],
        ids=lambda v: (
            str(v).removeprefix("torch.")
            if isinstance(v, torch.dtype)
            else kwargs_id(v)
        ),
    )
    def test_eval_and_train_match_pytorch_optimizer(self, kwargs, dtype):
        """Both optimizers: 12 steps, eval(), eval() again, train(), then eval() and train()
        once more; the parameters and the group values agree after every switch."""
        steps = 12
        label = f"ScheduleFreeAdamW({kwargs}, {dtype})"
        seed = paper_reference.stable_seed("schedulefree-switch", dtype)
        runs = []
        for cls in (reference(self.info.reference_name), self.cls()):
            params, opt = paper_reference.run(cls, kwargs, dtype, seed, steps)
            seen = [[p.detach().clone() for p in params]]
            for switch in ("eval", "eval", "train"):
                getattr(opt, switch)()
                seen.append([p.detach().clone() for p in params])
            seen.append([{k: g[k] for k in self.GROUP_KEYS} for g in opt.param_groups])
            opt.eval()
            opt.train()
            seen.append([p.detach().clone() for p in params])
            runs.append(seen)
        theirs, ours = runs
        for k, (a, e) in enumerate(zip(ours, theirs)):
            if k == 4:
                assert a == e, f"{label}: group values {a}, reference {e}"
                continue
            for i, (x, y) in enumerate(zip(a, e)):
                close(x, y, TOL, f"{label}, after switch #{k}", f"param #{i}")

    def test_eval_moves_parameters_to_the_average_and_back(self):
        """eval() gives x = (y - (1 - beta1) z) / beta1, train() returns to y, and a parameter
        the step has not reached (no state yet) is left alone."""
        torch.manual_seed(0)
        w, untouched = torch.randn(5, requires_grad=True), torch.randn(
            3, requires_grad=True
        )
        opt = self.cls()([w, untouched], lr=0.1, betas=(0.75, 0.999))
        for _ in range(3):
            w.grad = torch.randn(5)
            opt.step()
        y, z, u = (
            w.detach().clone(),
            opt.state[w]["z"].clone(),
            untouched.detach().clone(),
        )
        opt.eval()
        torch.testing.assert_close(
            w.detach(),
            (y - 0.25 * z) / 0.75,
            rtol=1e-6,
            atol=1e-7,
            msg=lambda m: f"eval(): {m}",
        )
        assert torch.equal(
            untouched.detach(), u
        ), "eval() moved a parameter without state"
        assert (
            untouched not in opt.state
        ), "eval() made state for a parameter without one"
        assert opt.param_groups[0]["train_mode"] is False, "train_mode after eval()"
        opt.train()
        torch.testing.assert_close(
            w.detach(), y, rtol=1e-6, atol=1e-7, msg=lambda m: f"train(): {m}"
        )
        assert opt.param_groups[0]["train_mode"] is True, "train_mode after train()"

    def test_state_dict_carries_the_mode_and_the_average_weights(self):
        cls = self.cls()
        w = torch.randn(4, requires_grad=True)
        opt = cls([w])
        w.grad = torch.ones(4)
        opt.step()
        opt.eval()
        sd = opt.state_dict()
        group = sd["param_groups"][0]
        assert (group["train_mode"], group["step"]) == (False, 1), group
        assert group["lr_max"] == 2.5e-3 and group["weight_sum"] == 2.5e-3**2, group
        assert set(sd["state"][0]) == {"z", "exp_avg_sq"}, sd["state"][0].keys()
        w2 = w.detach().clone().requires_grad_(True)
        opt2 = cls([w2])
        opt2.load_state_dict(sd)
        opt.train()
        opt2.train()
        assert torch.equal(w.detach(), w2.detach()), "train() after loading differs"
