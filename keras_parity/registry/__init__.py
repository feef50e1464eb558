"""What is compared: the model specs, their cases and tolerances (models/registry.py holds the
built-in ones), and the user's own models registered beside them."""
