"""What a failing (or any) cell is asked next: where it parts from float64 (localize.py),
rounding or semantic (rounding.py), whether its bits repeat (determinism.py), GPU variants (gpu.py)."""
