# Lookahead: the optimizer's steps move fast weights; every k steps of a group they are pulled
# back toward slow weights by 1 - alpha, and the slow weights become them. It acts at `group` (the
# group's step count) and at `param` (the parameter after the step), points every per-parameter
# update has: any optimizer takes it as a variant (`optimizer LookaheadAdam from Adam` and
# `with lookahead`), as pytorch_optimizer's Lookahead wraps one.
modifier lookahead
summary "Lookahead: every k steps, the weights pulled back toward slow weights that then take their place."
reference "Zhang, Lucas, Hinton & Ba, Lookahead Optimizer: k steps forward, 1 step back, NeurIPS 2019. https://arxiv.org/abs/1907.08610"
input k: int = 5, keyword "steps of the optimizer between two pulls toward the slow weights"
    requires k > 0 else "k must be positive"
input alpha: float = 0.5, keyword "the slow weights' share at a pull: the weights become slow + alpha (fast - slow)"
    requires 0 <= alpha < 1 else "alpha must be in the range [0.0, 1.0)"
input pullback_momentum: str = "none", keyword "what a pull does to the optimizer's momentum buffer (where it exposes one, as SGD does): \"none\", \"reset\" (zeroed) or \"pullback\" (pulled toward a slow momentum, as the weights are)"
    requires pullback_momentum == "none" or pullback_momentum == "reset" or pullback_momentum == "pullback" else "pullback_momentum {pullback_momentum} must be one of (none, reset, pullback)"

# (pytorch_optimizer's names: the group's `counter`, each parameter's `slow_params` and
# `slow_momentum`, made when the optimizer is built)
state group counter (counter): count <- 0
state slow (slow_params) <- param, eager
state slow_m (slow_momentum) <- 0 if pullback_momentum == "pullback", eager

at group:
    counter <- 0 if counter + 1 >= k else counter + 1

at param p:
    if counter == 0:
        p <- lerp(p, slow, 1 - alpha)
        slow <- p

at momentum b if exposed:
    if counter == 0:
        if pullback_momentum == "reset":
            b <- 0
        elif pullback_momentum == "pullback":
            b <- lerp(b, slow_m, 1 - alpha)
            slow_m <- b
