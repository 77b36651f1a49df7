# AdaNorm: the gradient that feeds the first moment is scaled up to the running average of its
# norm wherever its own norm falls below that average, so that the momentum does not shrink with
# a vanishing gradient. Any optimizer that exposes the gradient its first moment reads takes it
# (`with adanorm`).
modifier adanorm
summary "AdaNorm: the first moment's gradient scaled up to the running average of its norm."
reference "Dubey, Basha, Singh & Chaudhuri, AdaNorm: Adaptive Gradient Norm Correction based Optimizer for CNNs, WACV 2023. https://arxiv.org/abs/2210.06364"
input adanorm: bool = false, keyword "scale the first moment's gradient up to the running average of its norm (AdaNorm)"
input adanorm_r: float = 0.95, keyword "decay rate of AdaNorm's running average of the gradient norm"
    requires 0 <= adanorm_r <= 1 else "adanorm_r must be in the range [0.0, 1.0]"

# (a one-element tensor, as pytorch_optimizer keeps it)
state e (exp_grad_adanorm) <- zeros(1) if adanorm

at momentum_input s:
    if adanorm:
        # (pytorch_optimizer's get_adanorm_gradient; the choice a tensor's, with no host sync)
        grad_norm <- norm(s)
        # (written `e * r`: multiplied, then added to, in the reference's order; `r * e + ...`
        # would be a lerp, which rounds otherwise)
        e <- e * adanorm_r + (1 - adanorm_r) * grad_norm
        e_now <- reshape_as(e, grad_norm)
        s <- where(grad_norm > 0 and e_now > grad_norm, s * e_now / grad_norm, s)
