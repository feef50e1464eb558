"""The commands of `keras-parity`, one module each: `add_parser(sub)` declares its arguments and
returns its parser, `run(args, console)` runs it and returns its exit code (keras_parity/exitcodes.py).
A module whose NEEDS_CHECKOUT is true runs only from a checkout of keras-parity."""
