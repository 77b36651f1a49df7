# SAM: sharpness-aware minimization. Each step first moves the weights to the worst point of a
# ball of radius rho around them (along the gradient; with `adaptive`, ASAM's ball scaled by the
# weights), evaluates the closure there, moves back, and lets the optimizer step with that
# gradient. It acts around the whole step, in `update` blocks of its own that run before the
# optimizer's: any optimizer with a per-parameter update takes it as a variant
# (`optimizer SAMAdamW from AdamW` and `with sam`), as pytorch_optimizer's SAM wraps one.
modifier sam
summary "SAM: the step's gradient taken at the worst weights within rho of the weights."
reference "Foret, Kleiner, Mobahi & Neyshabur, Sharpness-Aware Minimization for Efficiently Improving Generalization, ICLR 2021. https://arxiv.org/abs/2010.01412"
reference "Kwon, Kim, Park & Choi, ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of Deep Neural Networks, ICML 2021 (adaptive=True). https://arxiv.org/abs/2102.11600"
note "step(closure) needs a closure, which the step evaluates at the moved weights (it zeroes the gradients first): compute the gradients at the weights before calling step(), as with pytorch_optimizer's SAM."
note "GradScaler's protocol has no closure (torch's GradScaler.step refuses one): with fused=True the class does not claim _step_supports_amp_scaling, and a scaled loss is the closure's to unscale."
input rho: float = 0.05, keyword "radius of the neighbourhood the weights are moved within"
    requires rho >= 0 else "rho must be non-negative"
input adaptive: bool = false, keyword "ASAM: the neighbourhood scaled by the weights' magnitudes"
input use_gc: bool = false, keyword, constructor "centralize the gradient (its mean over every dimension but the first taken away) before the weights move along it"
input perturb_eps: float = 1e-12, keyword, constructor "term added to the gradient's norm"
    requires perturb_eps >= 0 else "perturb_eps must be non-negative"
check not is_complex(param) else "SAM does not support complex parameters"

# (pytorch_optimizer's names: each parameter's `old_p`, popped at the end of the step)
state optimizer grad_norm: total <- 0, transient
state old_p (old_p) lazy, transient

update:
    # the squared norm of all the gradients together, summed in float32 as the reference does
    # (the square in parentheses: rounded, then added, as the reference's square_().sum())
    n <- cast(norm(grad * abs(param) if adaptive else grad), float32)
    grad_norm <- grad_norm + (n * n)

update group:
    # (one number for the group's parameters, read off the device once per group and step)
    scale <- item(rho / (sqrt(grad_norm) + perturb_eps))

update:
    e <- grad
    if use_gc and dim(param) > 1:
        e <- e - mean_except(e, 0)
    if adaptive:
        e <- param^2 * e
    old_p <- param  initially param
    # (the step in parentheses: rounded, then added, as the reference's p.add_(e_w))
    param <- param + (e * scale)

update optimizer:
    evaluate()

update:
    # (a parameter the first gradients did not reach was not moved: its copy is itself)
    old_p <- old_p  initially param
    param <- old_p
