"""Judging outputs against the goldens: one compare() per cell (compare.py), every cell of a
run (evaluate.py), the cross-backend fallback (crossref.py) and the numbers they use (numerics.py)."""
