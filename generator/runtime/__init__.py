"""What generated modules import at run time: the precision policies, the fused-kernel and sharding
helpers. Depends on torch only; never on the compiler.
"""
