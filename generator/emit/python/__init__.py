"""The Python backend: IR to a black-formatted torch.optim module (for-loop, foreach, fused).

Templates hold the layering every torch.optim module has; the printers here turn IR nodes into
Python expressions and statements.
"""
