"""State dicts in the layout of pytorch_optimizer's wrappers, for the variants that stand for them:
imported by users (and tests), never by the generator or the generated modules.

A variant such as LookaheadAdam (``optimizer LookaheadAdam from Adam`` with ``with lookahead``) is
one optimizer: its state_dict is torch's layout, the slow weights beside Adam's states and the
counter in the groups. pytorch_optimizer's ``Lookahead(Adam)`` keeps its own states apart:
``{'lookahead_state': {(group, index): {...}}, 'base_optimizer': Adam's state_dict}`` (its
counter is in the base's groups, which are its own). ``to_lookahead_state_dict`` and
``from_lookahead_state_dict`` move between the two, so a checkpoint of either loads into the other::

    reference.load_state_dict(to_lookahead_state_dict(ours.state_dict()))
    ours.load_state_dict(from_lookahead_state_dict(reference.state_dict()))
"""

from __future__ import annotations

from typing import Any

# the states pytorch_optimizer's Lookahead keeps (specs/fragments/lookahead.frag names its
# states after them)
LOOKAHEAD_STATES = ("slow_params", "slow_momentum")


def to_lookahead_state_dict(
    state_dict: dict[str, Any], keys: tuple[str, ...] = LOOKAHEAD_STATES
) -> dict[str, Any]:
    """A variant's state_dict in Lookahead's layout: the states named ``keys`` under
    ``lookahead_state`` by (group index, position in the group), the rest as the base's
    state_dict."""
    groups = state_dict["param_groups"]
    state = state_dict["state"]
    outer: dict[tuple[int, int], dict] = {}
    base: dict[int, dict] = {}
    for g, group in enumerate(groups):
        for k, index in enumerate(group["params"]):
            saved = state.get(index, {})
            own = {key: v for key, v in saved.items() if key in keys}
            rest = {key: v for key, v in saved.items() if key not in keys}
            if own:
                outer[(g, k)] = own
            if rest:
                base[index] = rest
    return {
        "lookahead_state": outer,
        "base_optimizer": {"state": base, "param_groups": groups},
    }


def from_lookahead_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """A state_dict of Lookahead's layout as one optimizer's: each parameter's Lookahead states
    beside its base states."""
    if set(state_dict) != {"lookahead_state", "base_optimizer"}:
        raise ValueError(
            "not a state_dict of pytorch_optimizer's Lookahead: its keys are "
            f"{sorted(state_dict)}, not ['base_optimizer', 'lookahead_state']"
        )
    base = state_dict["base_optimizer"]
    groups = base["param_groups"]
    state = {index: dict(saved) for index, saved in base["state"].items()}
    for (g, k), own in state_dict["lookahead_state"].items():
        index = groups[g]["params"][k]
        state.setdefault(index, {}).update(own)
    return {"state": state, "param_groups": groups}
