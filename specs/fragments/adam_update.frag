fragment adam_update
summary "The Adam step shared by Adam and AdamW: moments, bias corrections, the AMSGrad maximum."
t <- t + 1
use maximize
expose gradient g
if weight_decay != 0:
    if decoupled_weight_decay:
        param <- param * (1 - lr * weight_decay)
    else:
        g <- g + weight_decay * param
m <- beta1 * m + (1 - beta1) * g
v <- beta2 * v + (1 - beta2) * g^2
bias_correction1 <- 1 - beta1^t
bias_correction2 <- 1 - beta2^t
step_size <- lr / bias_correction1
if amsgrad:
    v_max <- max(v_max, v)
    denom <- sqrt(v_max) / bias_correction2^0.5 + eps
else:
    denom <- sqrt(v) / bias_correction2^0.5 + eps
param <- param - step_size * m / denom
