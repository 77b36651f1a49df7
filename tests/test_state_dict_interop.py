"""State dicts and the rest of the ``torch.optim.Optimizer`` protocol.

* a state_dict saved by torch loads into the generated twin and vice versa (also through
  ``torch.save`` / ``torch.load(weights_only=True)``), after which both continue for 5
  steps identically (bit-identical parameters for the float32 for-loop path);
* ``copy.deepcopy`` and ``pickle`` round trips;
* ``zero_grad(set_to_none=True/False)``;
* ``add_param_group``; a parameter in two groups is rejected with torch's message;
* step pre/post hooks (instance and global) and state_dict hooks fire like torch's;
* named parameters.
"""

from __future__ import annotations

import copy
import io
import pickle
import warnings

import pytest
import torch

from generator.verify.compare import (
    EXACT,
    assert_same_exception,
    call_capturing,
    compare_optimizers,
    compare_state_dicts,
)
from generator.verify.problems import (
    clone_params,
    gradients_for_step,
    make_initial_params,
    stable_seed,
)
from parity import (
    ALL_TWIN_NAMES,
    TWIN_NAMES,
    CompareContext,
    RecordKey,
    foreach_kwargs,
    generated_class,
    has_foreach,
    second_group_overrides,
    shapes_for,
    tolerance_for,
    torch_class,
    vector_shape,
)

DTYPE = torch.float32
WARMUP_STEPS = 5
CONTINUE_STEPS = 5

#: one config per optimizer exercising as much state as possible
RICH_CONFIGS = {
    "SGD": dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1),
    "Adam": dict(lr=0.01, weight_decay=0.1, amsgrad=True),
    "AdamW": dict(lr=0.01, amsgrad=True),
    "RMSprop": dict(lr=0.01, centered=True, momentum=0.1, weight_decay=0.1),
    "Adagrad": dict(lr=0.1, lr_decay=0.5, initial_accumulator_value=0.1),
    "Adamax": dict(lr=0.01, weight_decay=0.1),
    "Adadelta": dict(lr=0.5, rho=0.8, weight_decay=0.1),
    "NAdam": dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    "RAdam": dict(lr=0.01, weight_decay=0.1),
    "ASGD": dict(lr=0.01, t0=2, weight_decay=0.1),
    "Rprop": dict(lr=0.01, etas=(0.4, 1.3)),
    "Adafactor": dict(lr=0.01, weight_decay=0.1, beta2_decay=-0.7, d=1.5),
    "Muon": dict(
        lr=0.02,
        momentum=0.9,
        nesterov=False,
        weight_decay=0.05,
        adjust_lr_fn="match_rms_adamw",
    ),
}


def _load_across_cases():
    """name x direction x implementation x via_torch_save, with the ids of a stacked
    parametrisation; no foreach case for a twin without foreach (Muon)."""
    return [
        pytest.param(
            name,
            direction,
            foreach,
            via_torch_save,
            id=f"{name}-{direction}-{'foreach' if foreach else 'for_loop'}-{via_id}",
        )
        for name in TWIN_NAMES
        for direction in ("torch_to_generated", "generated_to_torch")
        for foreach in (False, True)
        if not foreach or has_foreach(name)
        for via_torch_save, via_id in ((False, "in_memory"), (True, "torch_save"))
    ]


def _groups(name, params, kwargs):
    return [
        {"params": params[:2]},
        {"params": params[2:], **second_group_overrides(name, kwargs)},
    ]


def _make(cls, name, params, foreach):
    kwargs = {**RICH_CONFIGS[name], **foreach_kwargs(name, foreach)}
    return cls(_groups(name, params, kwargs), **kwargs)


def _step(opt, params, initial, step, seed, ctx=None):
    grads = gradients_for_step(step, initial, seed)
    if ctx is not None:
        ctx.pristine_grads = grads
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()
    return opt.step()


def _ctx(label, name, foreach, step="(after load_state_dict)"):
    """Exact for the for-loop path; the foreach path within float32 tolerance."""
    tol = tolerance_for(DTYPE) if foreach else EXACT
    return CompareContext(
        label=label,
        step=step,
        tol=tol,
        record=RecordKey(
            name,
            "vs torch (state_dict interop)",
            "float32",
            "foreach" if foreach else "for-loop",
        ),
    )


def _roundtrip_torch_save(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("name,direction,foreach,via_torch_save", _load_across_cases())
def test_state_dict_loads_across_implementations(
    name, direction, foreach, via_torch_save
):
    seed = stable_seed(name, "interop")
    initial = make_initial_params(DTYPE, seed, shapes_for(name))
    src_cls, dst_cls = torch_class(name), generated_class(name)
    if direction == "generated_to_torch":
        src_cls, dst_cls = dst_cls, src_cls

    src_params = clone_params(initial)
    src = _make(src_cls, name, src_params, foreach)
    for step in range(WARMUP_STEPS):
        _step(src, src_params, initial, step, seed)

    saved = src.state_dict()
    saved = _roundtrip_torch_save(saved) if via_torch_save else copy.deepcopy(saved)
    dst_params = clone_params([p.detach() for p in src_params])
    dst = _make(dst_cls, name, dst_params, foreach)
    dst.load_state_dict(saved)

    label = (
        f"{dst_cls.__module__}.{name} after load_state_dict() of a "
        f"{src_cls.__module__}.{name} state_dict ({'foreach' if foreach else 'for-loop'}, "
        f"{'torch.save/torch.load' if via_torch_save else 'in memory'})"
    )
    ctx = _ctx(label, name, foreach)
    # the loaded optimizer's state_dict is the saved one
    compare_state_dicts(dst.state_dict(), src.state_dict(), ctx)
    # compare with the generated side as "actual", torch's as "expected"
    runs = [(src, src_params), (dst, dst_params)]
    if direction == "torch_to_generated":
        runs.reverse()
    (gen, gen_params), (ref, ref_params) = runs
    for step in range(WARMUP_STEPS, WARMUP_STEPS + CONTINUE_STEPS):
        ctx.step = step
        _step(src, src_params, initial, step, seed, ctx)
        _step(dst, dst_params, initial, step, seed, ctx)
        compare_optimizers(gen, ref, gen_params, ref_params, ctx)


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_generated_state_dict_is_weights_only_loadable(name):
    """Nothing but tensors / plain Python values: ``torch.load(weights_only=True)`` works."""
    seed = stable_seed(name, "weights_only")
    initial = make_initial_params(DTYPE, seed, shapes_for(name))
    params = clone_params(initial)
    opt = _make(generated_class(name), name, params, False)
    for step in range(3):
        _step(opt, params, initial, step, seed)
    loaded = _roundtrip_torch_save(opt.state_dict())
    compare_state_dicts(
        loaded, opt.state_dict(), _ctx(f"generated.{name} state_dict", name, False, 2)
    )


def _public_attrs(obj):
    return {k for k in obj.__dict__ if not k.startswith("_")}


def _storages(opt):
    return {
        v.untyped_storage().data_ptr()
        for s in opt.state.values()
        if isinstance(s, dict)
        for v in s.values()
        if isinstance(v, torch.Tensor) and v.numel() > 0
    }


def _params_of(opt):
    return [p for g in opt.param_groups for p in g["params"]]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name", TWIN_NAMES)
def test_copy_is_independent_and_continues_identically(name, how):
    seed = stable_seed(name, how)
    initial = make_initial_params(DTYPE, seed, shapes_for(name))
    params = clone_params(initial)
    cls = generated_class(name)
    opt = _make(cls, name, params, False)
    for step in range(3):
        _step(opt, params, initial, step, seed)

    clone = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    assert type(clone) is cls
    assert _public_attrs(clone) == _public_attrs(opt)
    # the same for torch's class, for reference: generated must not add/drop attributes
    t_opt = _make(torch_class(name), name, clone_params(initial), False)
    t_clone = (
        copy.deepcopy(t_opt) if how == "deepcopy" else pickle.loads(pickle.dumps(t_opt))
    )
    assert _public_attrs(clone) == _public_attrs(t_clone)

    clone_params_ = _params_of(clone)
    assert all(a is not b for a, b in zip(clone_params_, params))
    assert not (_storages(clone) & _storages(opt)), "the copy shares state storage"
    ctx = CompareContext(label=f"{how} of generated.{name}", step=2, tol=EXACT)
    compare_state_dicts(clone.state_dict(), opt.state_dict(), ctx)

    for step in range(3, 6):
        ctx.step = step
        _step(opt, params, initial, step, seed)
        _step(clone, clone_params_, initial, step, seed)
        compare_optimizers(clone, opt, clone_params_, params, ctx)

    # hooks still work on the copy (torch re-patches step in __setstate__)
    fired = []
    clone.register_step_post_hook(lambda *a: fired.append("post"))
    _step(clone, clone_params_, initial, 6, seed)
    assert fired == ["post"]


@pytest.mark.parametrize(
    "set_to_none", [True, False, None], ids=["none", "zeros", "default"]
)
@pytest.mark.parametrize("name", TWIN_NAMES)
def test_zero_grad_matches_torch(name, set_to_none):
    seed = stable_seed(name, "zero_grad")
    initial = make_initial_params(DTYPE, seed, shapes_for(name))
    results = []
    for cls in (torch_class(name), generated_class(name)):
        params = clone_params(initial)
        opt = _make(cls, name, params, False)
        _step(opt, params, initial, 1, seed)
        # step 0 leaves param #3 without a gradient
        _step(opt, params, initial, 0, seed)
        grads_before = [p.grad for p in params]
        if set_to_none is None:
            opt.zero_grad()
        else:
            opt.zero_grad(set_to_none=set_to_none)
        results.append((params, grads_before))
    (t_params, t_before), (g_params, g_before) = results
    for i, (t, g) in enumerate(zip(t_params, g_params)):
        if t.grad is None:
            assert g.grad is None, f"param #{i}: expected grad None, got {g.grad}"
            continue
        assert g.grad is not None, f"param #{i}: expected zero grad, got None"
        torch.testing.assert_close(g.grad, t.grad, rtol=0, atol=0)
        # set_to_none=False zeroes in place, like torch
        assert (g.grad is g_before[i]) == (t.grad is t_before[i])


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_add_param_group_matches_torch(name):
    seed = stable_seed(name, "add_param_group")
    initial = make_initial_params(DTYPE, seed, shapes_for(name))
    kwargs = {**RICH_CONFIGS[name], **foreach_kwargs(name, False)}
    overrides = second_group_overrides(name, kwargs)
    runs = []
    for cls in (torch_class(name), generated_class(name)):
        params = clone_params(initial)
        opt = cls(params[:2], **kwargs)
        _step(opt, params, initial, 1, seed)  # state for group 0 exists already
        opt.add_param_group({"params": params[2:], **copy.deepcopy(overrides)})
        runs.append((opt, params))
    (t_opt, t_params), (g_opt, g_params) = runs
    ctx = CompareContext(
        label=f"generated.{name}.add_param_group() vs torch's",
        step="(after add)",
        tol=EXACT,
    )
    compare_state_dicts(g_opt.state_dict(), t_opt.state_dict(), ctx)
    for step in range(2, 8):
        ctx.step = step
        _step(t_opt, t_params, initial, step, seed)
        _step(g_opt, g_params, initial, step, seed, ctx)
        compare_optimizers(g_opt, t_opt, g_params, t_params, ctx)


@pytest.mark.parametrize("where", ["constructor", "add_param_group", "same_group"])
@pytest.mark.parametrize("name", ALL_TWIN_NAMES)
def test_parameter_in_two_groups_is_rejected_like_torch(name, where):
    outcomes = []
    for cls in (torch_class(name), generated_class(name)):
        a = torch.zeros(vector_shape(name, 2), requires_grad=True)
        b = torch.zeros(vector_shape(name, 3), requires_grad=True)

        def build():
            if where == "constructor":
                return cls([{"params": [a, b]}, {"params": [b]}])
            if where == "add_param_group":
                opt = cls([a, b])
                opt.add_param_group({"params": [b], "lr": 0.5})
                return opt
            return cls([a, b, a])  # a warning in torch, not an error

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt, exc = call_capturing(build)
        outcomes.append((exc, [(w.category, str(w.message)) for w in caught], opt))
    (t_exc, t_warn, t_opt), (g_exc, g_warn, g_opt) = outcomes
    assert_same_exception(
        g_exc, t_exc, f"generated.{name}: parameter in two groups ({where})"
    )
    assert (
        g_warn == t_warn
    ), f"warnings differ:\n  expected {t_warn}\n  got      {g_warn}"
    if t_exc is None:
        assert [len(g["params"]) for g in g_opt.param_groups] == [
            len(g["params"]) for g in t_opt.param_groups
        ]


def _hook_trace(cls, name, use_closure):
    """Run two steps with instance + global pre/post hooks; return what the hooks saw."""
    seed = stable_seed(name, "hooks")
    initial = make_initial_params(DTYPE, seed, shapes_for(name))
    params = clone_params(initial)
    opt = _make(cls, name, params, False)
    trace = []

    def snapshot():
        return params[0].detach().clone()

    def pre(o, args, kwargs):
        assert o is opt
        trace.append(("pre", len(args), sorted(kwargs), snapshot()))

    def post(o, args, kwargs):
        assert o is opt
        trace.append(("post", len(args), sorted(kwargs), snapshot()))

    def global_pre(o, args, kwargs):
        if o is opt:
            trace.append(("global_pre",))

    def global_post(o, args, kwargs):
        if o is opt:
            trace.append(("global_post",))

    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    handles = [
        opt.register_step_pre_hook(pre),
        opt.register_step_post_hook(post),
        register_optimizer_step_pre_hook(global_pre),
        register_optimizer_step_post_hook(global_post),
    ]
    try:
        for step in range(2):
            if use_closure:

                def closure(step=step):
                    trace.append(("closure",))
                    for p, g in zip(params, gradients_for_step(step, initial, seed)):
                        p.grad = g
                    return torch.tensor(1.0)

                opt.step(closure=closure)
            else:
                _step(opt, params, initial, step, seed)
        for h in handles:
            h.remove()
        _step(opt, params, initial, 2, seed)  # no hook fires any more
    finally:
        for h in handles:
            h.remove()
    return trace


@pytest.mark.parametrize("use_closure", [False, True], ids=["no_closure", "closure"])
@pytest.mark.parametrize("name", TWIN_NAMES)
def test_step_hooks_fire_like_torch(name, use_closure):
    expected = _hook_trace(torch_class(name), name, use_closure)
    actual = _hook_trace(generated_class(name), name, use_closure)
    assert [t[:3] for t in actual] == [t[:3] for t in expected]
    for a, e in zip(actual, expected):
        if len(e) == 4:
            torch.testing.assert_close(a[3], e[3], rtol=0, atol=0, msg=f"hook {e[0]}")
    kinds = [t[0] for t in actual]
    assert kinds.count("pre") == 2 and kinds.count("post") == 2


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_step_pre_hook_can_replace_the_closure(name):
    shape = vector_shape(name, 3)
    p = torch.ones(shape, requires_grad=True)
    opt = generated_class(name)([p], lr=0.1)
    called = []

    def replacement():
        called.append(True)
        p.grad = torch.ones(shape)
        return torch.tensor(7.0)

    # the hook args include `self` (torch passes the bound call's full *args)
    opt.register_step_pre_hook(
        lambda o, args, kwargs: (args[:1], {"closure": replacement})
    )
    loss = opt.step()
    assert called == [True] and float(loss) == 7.0
    assert not torch.equal(p.detach(), torch.ones(shape)), "step() ignored the gradient"


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_state_dict_hooks_fire(name):
    p = torch.ones(vector_shape(name, 3), requires_grad=True)
    opt = generated_class(name)([p], lr=0.1)
    p.grad = torch.ones_like(p)
    opt.step()
    fired = []
    opt.register_state_dict_pre_hook(lambda o: fired.append("sd_pre"))
    opt.register_state_dict_post_hook(lambda o, sd: fired.append("sd_post"))
    opt.register_load_state_dict_pre_hook(lambda o, sd: fired.append("load_pre"))
    opt.register_load_state_dict_post_hook(lambda o: fired.append("load_post"))
    opt.load_state_dict(opt.state_dict())
    assert fired == ["sd_pre", "sd_post", "load_pre", "load_post"]


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_named_parameters_match_torch(name):
    seed = stable_seed(name, "named")
    initial = make_initial_params(DTYPE, seed, shapes_for(name))
    runs = []
    for cls in (torch_class(name), generated_class(name)):
        params = clone_params(initial)
        named = [(f"layer{i}.weight", p) for i, p in enumerate(params)]
        opt = cls(named, **RICH_CONFIGS[name])
        for step in range(3):
            _step(opt, params, initial, step, seed)
        runs.append((opt, params))
    (t_opt, t_params), (g_opt, g_params) = runs
    ctx = CompareContext(label=f"generated.{name}(named_parameters)", step=2, tol=EXACT)
    compare_optimizers(g_opt, t_opt, g_params, t_params, ctx)
