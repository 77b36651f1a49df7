"""The spec language: its syntax tree, grammar, parser, builtin table, diagnostics and spec printer.

The first stage of the pipeline (language → check → lower → emit): text becomes typed syntax nodes
with positions, and every error names `file:line:col`. Nothing here knows about torch or Python
output.
"""
