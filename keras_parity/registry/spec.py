"""The vocabulary of the registry: models, cases, input specs and tolerances."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType

from keras_parity.registry.noise import MARGIN

BACKENDS = ("tensorflow", "jax", "torch")
# Unit roundoff u = 2^-p of each policy's compute dtype (p: significand bits incl. the implicit
# one; IEEE 754-2008 binary64 53, binary32 24, binary16 11; bfloat16 8). Under a policy other
# than float32 a case passes within POLICY_ULPS * u in relative L2 (elementwise, 8x that): a
# margin of 4 over the float32 cells' errors in u
# (docs/measurements.md, "Constants and the numbers behind them"). The registry's float32
# tolerances are not scaled: their margins (hundreds of u) would admit anything in 16 bits.
POLICY_ULPS = 32
POLICIES = {"float32": 2.0**-24, "float64": 2.0**-53, "mixed_float16": 2.0**-11, "mixed_bfloat16": 2.0**-8}
# TF32 (NVIDIA Ampere and later) rounds matmul and convolution inputs to 10 explicit
# mantissa bits, as binary16 does: the same unit roundoff, the same rule.
PRECISIONS = {**POLICIES, "tf32": 2.0**-11}
SOURCES = {
    "float64": "IEEE 754 binary64",
    "mixed_float16": "IEEE 754 binary16",
    "mixed_bfloat16": "bfloat16, 8 significand bits",
    "tf32": "NVIDIA TF32, 10 explicit mantissa bits",
}
MODES = ("infer", "train", "moving_stats", "grad", "sgd", "adam")

# The training path (keras_parity/run/training.py): TRAIN_STEPS steps of each optimizer, with
# the hyperparameters given here and Keras's defaults for the rest. Adam is default-constructed,
# `Adam()`, as users write it: the reference applies the config Keras reports, and a default a
# release changes fails the cells that use it (keras_parity/run/defaults.py).
TRAIN_STEPS = 3
OPTIMIZERS = {
    "sgd": {"learning_rate": 0.01, "momentum": 0.9, "nesterov": False},
    "adam": {},
}


@dataclass(frozen=True)
class Inp:
    """One model input: its shape (batch first), drawn U(low, high) in float32, or filled."""

    shape: tuple[int, ...]
    low: float = -1.0
    high: float = 1.0
    fill: float | None = None


@dataclass(frozen=True)
class Tol:
    """Pass when rel_l2 <= rel_l2 and |out - ref| <= atol + rtol * |ref| everywhere.

    Training cases compare each output group pooled (keras_parity/run/training.py): rel L2 over
    the group, and atol in units of the group's RMS."""

    rel_l2: float
    atol: float
    rtol: float
    why: str


@dataclass(frozen=True)
class Case:
    """One variant of a model, compared on its own.

    mode: 'infer' runs predict (and the eager call where it differs); 'train' calls the
    model with training=True; 'moving_stats' reports BatchNormalization moving statistics
    after one training-mode call. The training path (keras_parity/run/training.py): 'grad' gives
    the gradients of the loss (eagerly, as a custom training loop takes them); 'sgd' and
    'adam' take that optimizer's steps through compile + train_on_batch, the step model.fit
    runs. `tol` overrides the model's.
    """

    name: str
    builder: str
    inputs: dict[str, Inp]
    mode: str = "infer"
    classifier: bool = False
    tol: Tol | None = None

    @property
    def training(self) -> bool:
        return self.mode in ("grad", "sgd", "adam")

    @property
    def model_outputs(self) -> bool:
        """A forward case whose outputs are the model's (not the training path, not moving
        statistics): the cases whose layers are sketched, judged and profiled."""
        return not self.training and self.mode != "moving_stats"


@dataclass(frozen=True)
class Source:
    """Where a user model comes from; serialised as JSON onto the runner's command line."""

    name: str
    kind: str  # "file" | "builder"
    target: str  # an absolute .keras path, or "package.module:function"
    golden: str  # the golden folder (the goldens' root; the model's files sit under <name>/)
    inputs: str | None = None  # an absolute .npz path; None: drawn from the input specs
    custom_objects: str | None = None  # a module whose import registers custom classes
    cwd: str = "."  # where the user's own modules import from
    rel_l2: float | None = None
    # A builder's damping, {fnmatch pattern over variable paths: factor} (the registry's
    # weight_scale): the zoo's deep residual networks keep their outputs O(1) with it.
    weight_scale: dict[str, float] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Source:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class ModelSpec:
    module: str
    seed: int
    cases: tuple[Case, ...]
    tol: Tol
    # (backend, device, dtype) -> Tol; any element may be "*".
    tol_overrides: dict[tuple[str, str, str], Tol] = field(default_factory=dict)
    # fnmatch pattern on variable paths -> factor applied after drawing (see weights.py).
    weight_scale: dict[str, float] = field(default_factory=dict)
    # A user's model (keras_parity/registry/usermodel.py): a .keras file or a builder by import path.
    source: Source | None = None
    # The float32 noise measured on the CPUs (keras_parity/registry/noise.py, models/noise.json):
    # '<case>/<path>' -> envelope, and '<case>/<path>/<array>' per array of the training path.
    noise: dict[str, dict] = field(default_factory=dict)

    def tolerance(
        self, backend: str, device: str, dtype: str = "float32", case: Case | None = None, path: str | None = None
    ) -> Tol:
        """A float32 cell on a CPU: MARGIN times its measured noise; else (a GPU, a policy, a
        cell not measured yet) the registry's own, or the policy's unit-roundoff rule."""
        measured = self._measured(case, path) if _measured_on(device, dtype) and case else None
        if measured is not None:
            return measured
        if case is not None and case.tol is not None and dtype == "float32":
            return case.tol
        best, best_score = self.tol, -1
        if dtype in PRECISIONS and dtype != "float32" and not any(t == dtype for _, _, t in self.tol_overrides):
            u = PRECISIONS[dtype]
            why = f"{POLICY_ULPS} unit roundoffs of {dtype}'s compute dtype (u = {u:.2g}, {SOURCES[dtype]})"
            return Tol(POLICY_ULPS * u, 8 * POLICY_ULPS * u, 8 * POLICY_ULPS * u, why)
        for (b, d, t), tol in self.tol_overrides.items():
            if all(k in ("*", v) for k, v in zip((b, d, t), (backend, device, dtype))):
                score = sum(k != "*" for k in (b, d, t))
                if score > best_score:
                    best, best_score = tol, score
        return best

    def array_tolerances(self, case: Case, path: str, device: str = "cpu", dtype: str = "float32") -> dict[str, Tol]:
        """A training cell's tolerance per array (atol in units of the array's RMS): backprop
        through BatchNormalization amplifies rounding by layer, so each layer has its own noise.
        Empty where nothing is measured (a GPU, a policy, a forward cell)."""
        if not (case.training and _measured_on(device, dtype)):
            return {}
        prefix = f"{case.name}/{path}/"
        return {k[len(prefix) :]: _derived(v) for k, v in self.noise.items() if k.startswith(prefix)}

    def layer_tolerances(self, case: Case, device: str = "cpu", dtype: str = "float32") -> dict[str, Tol]:
        """A forward case's tolerance per layer output (judged by its sketch, golden/sketch.py):
        MARGIN times that layer's measured noise. Empty where nothing is measured."""
        if case.training or not _measured_on(device, dtype):
            return {}
        prefix = f"{case.name}/layers/"
        return {k[len(prefix) :]: _derived(v) for k, v in self.noise.items() if k.startswith(prefix)}

    def _measured(self, case: Case, path: str | None) -> Tol | None:
        """A forward cell's, or a training cell's for its pooled groups (its arrays have their own)."""
        envelope = self.noise.get(f"{case.name}/{path}")
        return _derived(envelope) if envelope else None

    def cases_for(self, dtype: str, training: bool = True) -> tuple[Case, ...]:
        """The cases a run under `dtype` has: no training path when not asked for, nor under
        mixed precision, where Keras adds dynamic loss scaling that skips steps by design."""
        skip = not training or dtype.startswith("mixed_")
        return tuple(c for c in self.cases if not (c.training and skip))

    def case(self, name: str) -> Case:
        for c in self.cases:
            if c.name == name:
                return c
        raise KeyError(name)


def _measured_on(device: str, dtype: str) -> bool:
    """Where the noise is measured, and so the tolerances derived: float32 cells on a CPU."""
    return dtype == "float32" and device == "cpu"


def _derived(envelope: dict) -> Tol:
    """MARGIN times a measured envelope (keras_parity/registry/noise.py)."""
    return Tol(
        MARGIN * envelope["rel_l2"],
        MARGIN * envelope["atol"],
        0.0,
        f"{MARGIN:g}x the float32 noise in models/noise.json (rel L2 {envelope['rel_l2']:.1e}, {envelope['worst']})",
    )


class Registry(Mapping):
    """The models one command knows: the built-in table (models/registry.py), then the user's
    models it was given (keras_parity/registry/usermodel.py). Read-only: `with_users` makes a
    new one, so a lookup means the same all run long, and two commands never share a user model."""

    def __init__(self, builtin: dict[str, ModelSpec], noise: dict[str, dict] | None = None):
        """`noise`: the measured envelopes of noise.json, '<model>/<case>/...' -> envelope."""
        noise = noise or {}
        self._builtin = MappingProxyType(
            {
                name: replace(spec, noise={k[len(name) + 1 :]: v for k, v in noise.items() if k.startswith(f"{name}/")})
                for name, spec in builtin.items()
            }
        )
        self._users: Mapping[str, ModelSpec] = MappingProxyType({})

    def __getitem__(self, name: str) -> ModelSpec:
        return self._users[name] if name in self._users else self._builtin[name]

    def __iter__(self):
        yield from self._builtin
        yield from self._users

    def __len__(self) -> int:
        return len(self._builtin) + len(self._users)

    @property
    def builtin(self) -> list[str]:
        return list(self._builtin)

    def with_users(self, specs: dict[str, ModelSpec]) -> Registry:
        """This registry and the user's models `specs`, by name; the same model twice is kept
        once, another one under a known name is refused (ValueError saying which model holds it)."""
        users = dict(self._users)
        for name, spec in specs.items():
            known = users.get(name, self._builtin.get(name))
            if known is not None and known != spec:
                holder = "a built-in model" if known.source is None else known.source.target
                raise ValueError(f"model name '{name}' is already taken by {holder}; rename the file or the function")
            users[name] = spec
        new = copy.copy(self)
        new._users = MappingProxyType(users)
        return new
