"""Emitters: from the checked spec and its IR to text (Python modules, LaTeX, the spec language)."""
