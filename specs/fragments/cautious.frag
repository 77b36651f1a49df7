# Cautious updates (C-AdamW, C-Lion): the entries of the direction whose sign disagrees with the
# gradient's are dropped, and the rest scaled up by the fraction kept, so that the step keeps its
# size. Any optimizer that exposes its direction takes it (`with cautious`).
modifier cautious
summary "Cautious updates: drop the direction's entries that disagree in sign with the gradient."
reference "Liang, Chen, Liu & Liu, Cautious Optimizers: Improving Training with One Line of Code, 2024. https://arxiv.org/abs/2411.16085"
input cautious: bool = false, keyword "mask the direction's entries whose sign disagrees with the gradient's"

at direction u, g:
    if cautious:
        # (pytorch_optimizer's apply_cautious: a 0/1 mask in the gradient's dtype, scaled by
        # numel / (kept + 1), then the product)
        mask <- type_as(where(u * g > 0, 1, 0), g)
        u <- u * (mask * (numel(mask) / (sum(mask) + 1)))
