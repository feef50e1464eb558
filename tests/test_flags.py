"""The launcher and the backend process read one declaration of what a run computes."""

import argparse
from dataclasses import fields, replace

from keras_parity.run import flags
from keras_parity.run.flags import RunFlags


def _parsed(argv: list[str]) -> RunFlags:
    ap = argparse.ArgumentParser()
    flags.add_arguments(ap)
    return flags.from_namespace(ap.parse_args(argv))


def test_every_flag_survives_the_command_line_alone_and_together():
    default = RunFlags()
    assert _parsed(flags.to_argv(default)) == default and flags.to_argv(default) == ["--device", "cpu"]
    other = {"device": "cuda", "dtype": "mixed_bfloat16", "plants": "/tmp/plants.json", "patch": "/tmp/fix.py"}
    changed = {f.name: (not f.default) if isinstance(f.default, bool) else other[f.name] for f in fields(RunFlags)}
    for name, value in changed.items():
        one = replace(default, **{name: value})
        assert _parsed(flags.to_argv(one)) == one, name
    everything = RunFlags(**changed)
    assert _parsed(flags.to_argv(everything)) == everything
