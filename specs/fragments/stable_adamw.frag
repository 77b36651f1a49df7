# StableAdamW's update clipping: the direction of an adaptive method divided by the root mean square
# of g² / v over the tensor, where that is above 1, so that a step whose second moment lags behind
# its gradient stays the size it would be with a current one. Any optimizer that exposes its
# direction beside its gradient and second moment takes it (`with stable_adamw`).
modifier stable_adamw
summary "StableAdamW's update clipping by the RMS of g² / v."
reference "Wortsman et al., Stable and low-precision training for large-scale vision-language models, NeurIPS 2023. https://arxiv.org/abs/2304.13013"
input stable_adamw: bool = false, keyword "divide the direction by max(1, RMS(g² / v)), StableAdamW's update clipping"

at adaptive_direction u, g, v:
    if stable_adamw:
        # (pytorch_optimizer's get_stable_adamw_rms, v floored at 1e-16)
        u <- u / max(sqrt(mean(g^2 / max(v, 1e-16))), 1.0)
