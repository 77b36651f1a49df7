"""Lowering: a checked spec becomes the IR (generator.ir) that the emitters print.

In-place torch operations are chosen here by rewrite rules, one table; the emitters only print.
"""
