fragment weight_decay
summary "L2 weight decay folded into the gradient, as torch.optim does it (SGD, Adam, RMSprop, Adagrad)."
if weight_decay != 0:
    g <- g + weight_decay * param
