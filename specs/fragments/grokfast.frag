# Grokfast (EMA): the gradient is amplified along its slow components, the exponential moving
# average of past gradients added to it lamb times, which shortens the delay before grokking. It
# acts at `grad`, the gradient as the step receives it: any optimizer takes it as a variant
# (`optimizer GrokFastAdamW from AdamW` and `with grokfast`), as the paper applies its filter to
# the gradients before the optimizer's step (pytorch_optimizer's gradfilter_ema).
modifier grokfast
summary "Grokfast: the gradient amplified by lamb times its exponential moving average."
reference "Lee, Kang, Lee, Kim & Kim, Grokfast: Accelerated Grokking by Amplifying Slow Gradients, 2024. https://arxiv.org/abs/2405.20233"
input grokfast_alpha: float = 0.98, keyword "decay rate of the gradient's moving average"
    requires 0 <= grokfast_alpha <= 1 else "grokfast_alpha must be in the range [0.0, 1.0]"
input grokfast_lamb: float = 2.0, keyword "how many times the moving average is added to the gradient"

# (pytorch_optimizer's GrokFastAdamW's name; the first gradient is the average's first value)
state ema (grok_exp_avg) lazy

at grad grok_grad:
    ema <- lerp(ema, grok_grad, 1 - grokfast_alpha)  initially grok_grad
    grok_grad <- grok_grad + grokfast_lamb * ema
