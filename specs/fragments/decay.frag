fragment decay
summary "pytorch_optimizer's weight decay: decoupled (the parameter scaled by 1 - weight_decay * lr, or 1 - weight_decay with fixed_decay) or, when weight_decouple is off, L2 folded into the gradient."
if weight_decay != 0:
    if weight_decouple:
        param <- param * (1.0 - weight_decay * (1.0 if fixed_decay else lr))
    elif weight_decay > 0:
        g <- g + weight_decay * param
