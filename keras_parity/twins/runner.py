"""One twin process: python -m keras_parity.twins.runner --twin torch-native --out DIR [--model M ...]

Runs in the environment of the twin's library, without importing Keras: the weights are
the seeded Keras weights of the goldens' weight list (golden/<model>/graph.json), ported
(keras_parity/twins/port.py). Writes its BackendRun (keras_parity/run/record.py) as the backend runner does,
each cell on the path 'native'.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from keras_parity import golden
from keras_parity.registry.builtin import builtin_registry
from keras_parity.registry.spec import ModelSpec
from keras_parity.run import envinfo, knobs, parent
from keras_parity.run.record import BackendRun, BuilderRecord, ModelRecord, Provenance, write_run
from keras_parity.run.weights import cached_weights, checksum, generate_inputs
from keras_parity.twins import ENV, MODULES


def run_model(name: str, spec: ModelSpec, twin, root: Path, cache: Path | None, label: str) -> tuple[dict, ModelRecord]:
    graph = golden.read_json(golden.graph_path(name, root))
    ref_meta = golden.read_json(golden.reference_path(name, root).with_suffix(".json"))
    forward = spec.cases_for("float32", training=False)  # the twins run the forward cases
    missing = sorted({c.builder for c in forward if c.builder not in twin.TWINS})
    if missing:
        raise LookupError(f"{label} has no twin of {name} ({', '.join(missing)}); that column is skipped")
    arrays: dict[str, np.ndarray] = {}
    cases: list[str] = []  # the record's, filled as they run
    record = ModelRecord(cases=cases)
    for case in forward:
        specs = [(p, tuple(s)) for p, s in graph[case.builder]["weights"]]
        fan_in = graph[case.builder].get("fan_in")
        weights = cached_weights(
            specs, spec.seed, case.builder, spec.weight_scale, cache and cache / "weights", fan_in=fan_in
        )
        record.builders[case.builder] = BuilderRecord(
            config_sha256=ref_meta["builders"][case.builder]["config_sha256"],  # the graph it twins
            weights_sha256=checksum(weights),
        )
        inputs = generate_inputs(case.inputs, spec.seed, case.builder)
        record.inputs_sha256[case.name] = checksum(inputs)
        model = twin.build(case.builder, dict(zip((p for p, _ in specs), weights)))  # fresh statistics per case
        bn = [p for p, _ in specs if p.endswith(("/moving_mean", "/moving_variance"))]
        t0 = time.perf_counter()
        for out, value in twin.run(model, case.mode, inputs, bn).items():
            arrays[f"{case.name}/native/{out}"] = value
        record.cell_seconds[f"{case.name}/native"] = round(time.perf_counter() - t0, 3)
        cases.append(case.name)
    return arrays, record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--twin", required=True, choices=sorted(MODULES))
    registry = builtin_registry()  # twins are of built-in models only
    ap.add_argument("--model", action="append", choices=registry.builtin)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--golden-dir", type=Path, default=golden.GOLDEN)
    ap.add_argument("--cache-dir", type=Path)
    args = ap.parse_args(argv)
    parent.watch()  # ends with the launcher, even one killed with SIGKILL
    args.out.mkdir(parents=True, exist_ok=True)
    t_start, lib = time.perf_counter(), ENV[args.twin][1]
    env = knobs.before_import(lib, args.cache_dir and args.cache_dir / "jax", "float32")
    run = BackendRun(args.twin, twin=True, env=env)
    try:
        twin = importlib.import_module(MODULES[args.twin])
        run.knobs = knobs.after_import(lib)
    except ImportError as exc:  # the library is not in this environment: the column is skipped
        run.import_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        write_run(args.out, run)
        print(f"{args.twin}: {run.import_error}", file=sys.stderr)
        return 2
    run.provenance = Provenance(**envinfo.provenance("cpu", None))
    for name in args.model or registry.builtin:
        try:
            model_arrays, model_record = run_model(
                name, registry[name], twin, args.golden_dir, args.cache_dir, args.twin
            )
        except LookupError as exc:  # a model without a twin: a one-line note, not a failure
            run.no_twin[name] = str(exc)
            continue
        except Exception as exc:  # on one line: torch's load_state_dict puts the key names on the next
            run.errors[name] = " ".join(f"{type(exc).__name__}: {exc}".split())
            traceback.print_exc()
            continue
        run.arrays.update({golden.key(name, k): v for k, v in model_arrays.items()})
        run.models[name] = model_record
    run.timings = {"total": time.perf_counter() - t_start}
    write_run(args.out, run)
    return 0


if __name__ == "__main__":
    envinfo.exit_fast(main())
