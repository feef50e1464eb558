"""The built-in models, imported as keras_parity.models (keras_parity/registry/builtin.py)."""

# One file, one module: imported as `models` too (the checkout's root on sys.path), a model
# file's classes would exist twice and Keras's registrations would name the second copy.
if __name__ != "keras_parity.models":
    raise ImportError(
        f"the built-in models are imported as keras_parity.models, not {__name__}; "
        "name a model file's module keras_parity.models.<file> (keras_parity/registry/builtin.py)"
    )
