"""The checker: names, kinds and the rules a spec must keep before anything is lowered.

It reads the syntax tree from generator.language and returns a CheckedSpec (or located
diagnostics); every refusal of a spec happens here. checker holds the entry points (check,
check_fragment) and the walk over a spec; model the CheckedSpec and its symbols; declarations the
checks of each input and state; kinds the typing of expressions; flow the data flow of the
per-parameter update's statements; flat the `update flat:` language; queries the questions asked
of a whole spec (refuses_complex, whole_tensor_constructs).
"""
