# Gradient centralization: each output channel's gradient (the slices along the first dimension)
# is moved to mean zero, which projects the step onto the hyperplane of zero-mean weights. Vectors
# and scalars are left as they are. Any optimizer that exposes its gradient takes it
# (`with gradient_centralization`).
modifier gradient_centralization
summary "Gradient centralization: each output channel's gradient moved to mean zero."
reference "Yong, Huang, Hua & Zhang, Gradient Centralization: A New Optimization Technique for Deep Neural Networks, ECCV 2020. https://arxiv.org/abs/2004.01461"
input use_gc: bool = false, keyword "subtract from each output channel's gradient its mean (gradient centralization), for parameters of two or more dimensions"

check not (use_gc and is_complex(grad)) else "gradient centralization (use_gc=True) does not support complex parameters"

at gradient g:
    if use_gc and dim(param) > 1:
        # (pytorch_optimizer's centralize_gradient: the mean over every dimension but the first)
        g <- g - mean_except(g, 0)
