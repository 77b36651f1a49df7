fragment maximize
summary "The gradient to descend along: negated when the objective is maximised."
g <- -grad if maximize else grad
