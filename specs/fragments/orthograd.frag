# OrthoGrad: the gradient's component along the parameter is removed and the rest rescaled to the
# gradient's norm, so that a step cannot grow the weights along themselves (the naive loss
# minimization that precedes grokking's numerical collapse). It acts at `grad`, the gradient as
# the step receives it, which every per-parameter update has: always on, any optimizer takes it as
# a variant (`optimizer OrthoAdam from Adam` and `with orthograd`), as pytorch_optimizer wraps one.
modifier orthograd
summary "OrthoGrad: the gradient projected orthogonally to the parameter, its norm kept."
reference "Prieto, Barsbey, Mediano & Birdal, Grokking at the Edge of Numerical Stability, ICLR 2025. https://arxiv.org/abs/2501.04697"
check not is_complex(grad) else "OrthoGrad does not support complex parameters"

at grad ortho_grad:
    # (pytorch_optimizer's apply_orthogonal_gradients, in float32 for narrower dtypes, with
    # OrthoGrad's eps of 1e-30)
    w <- at_least_float32(param)
    gw <- at_least_float32(ortho_grad)
    proj <- dot(w, gw) / (dot(w, w) + 1e-30)
    # (the product in parentheses: computed, then subtracted, as the reference's g.sub(w * proj);
    # an addcmul would round the two in one)
    ortho <- gw - (w * proj)
    g_norm <- norm(gw)
    ortho_norm <- norm(ortho)
    # (a gradient parallel to the parameter has no orthogonal direction to rescale)
    ortho <- where(ortho_norm <= 4 * machine_epsilon(gw) * g_norm, 0, ortho)
    ortho_grad <- type_as(ortho * (g_norm / (ortho_norm + 1e-30)), ortho_grad)
