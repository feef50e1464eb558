"""Producing outputs: the backend environments and images, the machine they run on, the
backend process (runner.py) and what it computes (weights, knobs, training steps), and the
launcher that fans runs out and reads them back (launch.py)."""
