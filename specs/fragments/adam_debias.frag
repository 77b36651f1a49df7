# AdamD: the step size leaves out the first moment's bias correction, so that the first steps,
# whose second moment is bias-corrected, are not larger than later ones. Any optimizer that exposes
# the correction its step size divides by takes it (`with adam_debias`).
modifier adam_debias
summary "AdamD: the step size without the first moment's bias correction."
reference "John, AdamD: Improved bias-correction in Adam, 2021. https://arxiv.org/abs/2110.10828"
input adam_debias: bool = false, keyword "leave the first moment's bias correction out of the step size (AdamD): only the second moment is bias-corrected"

at first_moment_correction c:
    if adam_debias:
        # (pytorch_optimizer's apply_adam_debias: the step size as it is; x / 1 is x exactly)
        c <- 1.0
