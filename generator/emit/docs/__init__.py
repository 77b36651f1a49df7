"""The documentation backend: the algorithm box in LaTeX, per-optimizer pages and the catalogue."""
