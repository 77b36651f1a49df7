"""The checker: names, kinds and the rules a spec must keep before anything is lowered.

It reads the syntax tree from generator.language and returns a CheckedSpec (or located
diagnostics); every refusal of a spec happens here.
"""
