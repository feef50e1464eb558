"""What a backend or twin process returns, typed: the record written to and read from its run folder.

A run folder holds, per backend or twin <name>: <name>.npz (its cells' outputs), <name>.layers.npz,
<name>.sketches.npz and <name>.feeds.npz when it captured them, and <name>.json, the rest of the
record, written last. A backend runner writes them after each model it finishes, marked
`partial` until the last, so a process that crashes or hangs later keeps the models it
finished. write_run and read_run are the only code that knows this layout.

In the JSON a field left at its default is left out, except those every record carries
(ALWAYS), so the files read the same as they always have.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from keras_parity import golden

# A backend runner writes this line to its log as it starts each model: the launcher reads a
# crashed process's log from there (run/launch.py).
MODEL_MARKER = "keras-parity runner: starting {model}"


def _to_json(obj, skip: frozenset[str] = frozenset()) -> dict:
    """A record's fields as JSON, those at their default left out unless it says ALWAYS."""
    out = {}
    for f in dataclasses.fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name in obj.ALWAYS or value != default:
            out[f.name] = value
    return out


def _from_json(cls, d: dict):
    """A record from its JSON; a key the record does not know is dropped."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class BuilderRecord:
    """One builder's model as a run built it: checksums, weight list, graph facts, Keras defaults."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"config_sha256", "weights_sha256"})

    config_sha256: str
    weights_sha256: str
    weights: list | None = None  # [[variable path, shape], ...] in model order
    fan_in: dict | None = None  # a depthwise kernel's fan-in, by variable path
    jit_compile: bool | None = None
    trainable: list | None = None  # the trainable variables' paths
    output_shape: list | None = None
    defaults: dict | None = None  # the Keras defaults its layers lean on (run/defaults.py)
    config: dict | None = None  # the whole graph, with `configs` asked for (the float64 reference walks it)

    def as_json(self) -> dict:
        return _to_json(self)


@dataclass
class ModelRecord:
    """One model of a run: its builders, inputs' checksums, per-cell seconds and what else it measured."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"builders"})

    builders: dict[str, BuilderRecord] = field(default_factory=dict)
    inputs_sha256: dict[str, str] = field(default_factory=dict)  # by case
    cell_seconds: dict[str, float] = field(default_factory=dict)  # by 'case/path'
    twice_max_ulp: dict[str, int] = field(default_factory=dict)  # by 'case/path', with `twice` asked for
    training: dict | None = None  # the optimizers' and loss's full configs, defaults included
    cases: list[str] | None = None  # a twin's: the cases it ran
    seconds: float | None = None

    def as_json(self) -> dict:
        return _to_json(self) | {"builders": {n: b.as_json() for n, b in self.builders.items()}}

    @classmethod
    def from_json(cls, d: dict) -> ModelRecord:
        record = _from_json(cls, d)
        record.builders = {n: _from_json(BuilderRecord, b) for n, b in d.get("builders", {}).items()}
        return record


@dataclass
class Provenance:
    """Where a run ran: releases, device, CPU or GPU, ISA cap, the platform key made of them, commit."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {"versions", "device", "gpu_model", "gpu", "cpu_model", "cpu", "isa_cap", "platform", "git_commit"}
    )

    versions: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    gpu_model: str | None = None
    gpu: dict | None = None
    cpu_model: str | None = None
    cpu: dict | None = None
    isa_cap: str | None = None
    platform: str | None = None
    git_commit: str | None = None

    def as_json(self) -> dict:
        return _to_json(self)

    def identity(self) -> dict:
        """The machine facts its platform key was made from (golden.snapshot_identity)."""
        return golden.snapshot_identity(self.as_json())


@dataclass
class BackendRun:
    """One backend's (or twin's) run: its outputs and captures, and its record. `error`: the
    whole backend failed (no environment, no import, a crash); `wall`: its process's wall time."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"backend", "models", "errors"})
    ARRAYS: ClassVar[tuple[str, ...]] = ("layers", "sketches", "feeds", "planted")  # captures beside the outputs
    UNWRITTEN: ClassVar[frozenset[str]] = frozenset(
        {"arrays", "layers", "sketches", "feeds", "planted", "error", "wall"}
    )

    backend: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # 'model/case/path/output'
    layers: dict[str, np.ndarray] = field(default_factory=dict)  # '--layers': 'model/case/layer'
    sketches: dict[str, np.ndarray] = field(default_factory=dict)  # every layer's sketch: 'model/case/layer'
    feeds: dict[str, np.ndarray] = field(default_factory=dict)  # user models' weights and inputs
    planted: dict[str, np.ndarray] = field(default_factory=dict)  # '--plants': '<plant id>/arrays|sketches/...'
    error: str | None = None
    wall: float = 0.0
    twin: bool = False  # a native twin (keras_parity/twins/), not a Keras backend
    env: dict[str, str] = field(default_factory=dict)  # what the runner set before importing
    dtype: str | None = None  # the dtype policy it ran under
    knobs: dict[str, Any] | None = None  # determinism and precision settings (run/knobs.py)
    provenance: Provenance | None = None  # None: it stopped before importing its library
    models: dict[str, ModelRecord] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # a model that failed: why, on one line
    # The models of `errors` the user can fix (their files, inputs or custom objects): exit 2, not 3.
    usage_errors: list[str] = field(default_factory=list)
    no_twin: dict[str, str] = field(default_factory=dict)  # a twin's models it has no twin of
    import_error: str | None = None
    device_error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase ('import', 'build', ...)
    peak_rss_mb: float | None = None
    partial: bool = False  # written after each model: the process had not finished (run/runner.py)
    watch: dict[str, dict] = field(default_factory=dict)  # the watch list's observations (keras_parity/watch)

    def cell(self, model: str, case: str, path: str) -> dict[str, np.ndarray]:
        return golden.part(self.arrays, model, case, path)

    def paths(self, model: str, case: str) -> list[str]:
        return golden.children(self.arrays, model, case)

    @property
    def device(self) -> str:
        return (self.provenance and self.provenance.device) or "?"

    @property
    def platform(self) -> str | None:
        return self.provenance.platform if self.provenance else None

    @property
    def versions(self) -> dict[str, str]:
        return self.provenance.versions if self.provenance else {}

    def failure(self, model: str) -> str | None:
        """Why `model` has no result in this run (the whole run's error, or the model's), or None."""
        return self.error or self.errors.get(model)

    def header(self) -> dict:
        """The JSON of the record without its models (their graphs and weight lists stay in
        the run folder): what a report keeps of a run."""
        out = _to_json(self, self.UNWRITTEN | {"models", "provenance", "partial"})
        return out | (self.provenance.as_json() if self.provenance else {})

    def as_json(self) -> dict:
        partial = {"partial": True} if self.partial else {}
        return self.header() | partial | {"models": {n: m.as_json() for n, m in self.models.items()}}

    @classmethod
    def from_json(cls, d: dict) -> BackendRun:
        run = _from_json(cls, {k: v for k, v in d.items() if k not in cls.UNWRITTEN | {"provenance"}})
        run.models = {n: ModelRecord.from_json(m) for n, m in d.get("models", {}).items()}
        if "platform" in d:  # written by every run that imported its library
            run.provenance = _from_json(Provenance, d)
        return run


def summary(run: BackendRun) -> dict:
    """What parity.json keeps of a run: its header, its error and its wall time."""
    return {**run.header(), "error": run.error, "wall_s": round(run.wall, 2)}


def write_run(out: Path, run: BackendRun) -> None:
    """A run's files in `out` (see the module's docstring), the JSON last."""
    out = Path(out)
    for part in run.ARRAYS:
        if getattr(run, part):
            golden.write_npz(out / f"{run.backend}.{part}.npz", getattr(run, part))
    golden.write_run(out, run.backend, run.arrays, run.as_json())


def read_run(out: Path, name: str) -> BackendRun:
    """The run `write_run` left in `out` for backend or twin `name`; golden.GoldenError when its
    JSON is missing or corrupt. A run that stopped before importing has no outputs to read."""
    out = Path(out)
    run = BackendRun.from_json(golden.read_json(out / f"{name}.json"))
    if run.import_error is None and run.device_error is None:
        run.arrays = golden.read_npz(out / f"{name}.npz")
        for part in run.ARRAYS:
            if (out / f"{name}.{part}.npz").exists():
                setattr(run, part, golden.read_npz(out / f"{name}.{part}.npz"))
    return run


def one_line(exc: Exception, backend: str, users: bool) -> str:
    """An error in one line. Keras nests a model file's loading errors as 'Exception encountered:'
    lines under a first one that names no cause: the innermost is the root cause."""
    lines = [ln.strip() for ln in f"{type(exc).__name__}: {exc}".splitlines() if ln.strip()]
    nested = "Exception encountered:"
    causes = [ln.removeprefix(nested).strip() for ln in lines if ln.startswith(nested)]
    if causes:
        return (
            f"{lines[0].split('. ')[0]}; root cause: {causes[-1]} (Keras on {backend} could not rebuild the model "
            "from its file: saved by a newer Keras, or a custom object it does not have)"
        )
    # the user's own code: say where to look
    return lines[0] + (f" (raised by the model's own code on {backend}; fix it there)" if users else "")
