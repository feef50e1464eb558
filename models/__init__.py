"""Model definitions shared by every backend; the registry is models/registry.py."""
