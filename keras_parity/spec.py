"""The vocabulary of the registry: models, cases, input specs and tolerances."""

from __future__ import annotations

from dataclasses import dataclass, field

BACKENDS = ("tensorflow", "jax", "torch")
# Unit roundoff u = 2^-p of each policy's compute dtype (p: significand bits incl. the implicit
# one; IEEE 754-2008 binary64 53, binary32 24, binary16 11; bfloat16 8). Under a policy other
# than float32 a case passes within POLICY_ULPS * u in relative L2 (elementwise, 8x that):
# every float32 cell here stays within 8u, so 32u leaves a margin of 4. The registry's float32
# tolerances are not scaled: their margins (hundreds of u) would admit anything in 16 bits.
POLICY_ULPS = 32
POLICIES = {"float32": 2.0**-24, "float64": 2.0**-53, "mixed_float16": 2.0**-11, "mixed_bfloat16": 2.0**-8}
MODES = ("infer", "train", "moving_stats")


@dataclass(frozen=True)
class Inp:
    """One model input: its shape (batch first), drawn U(low, high) in float32, or filled."""

    shape: tuple[int, ...]
    low: float = -1.0
    high: float = 1.0
    fill: float | None = None


@dataclass(frozen=True)
class Tol:
    """Pass when rel_l2 <= rel_l2 and |out - ref| <= atol + rtol * |ref| everywhere."""

    rel_l2: float
    atol: float
    rtol: float
    why: str


@dataclass(frozen=True)
class Case:
    """One variant of a model, compared on its own.

    mode: 'infer' runs predict (and the eager call where it differs); 'train' calls the
    model with training=True; 'moving_stats' reports BatchNormalization moving statistics
    after one training-mode call.
    """

    name: str
    builder: str
    inputs: dict[str, Inp]
    mode: str = "infer"
    classifier: bool = False


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

    def tolerance(self, backend: str, device: str, dtype: str = "float32") -> Tol:
        best, best_score = self.tol, -1
        if dtype in POLICIES and dtype != "float32" and not any(t == dtype for _, _, t in self.tol_overrides):
            u = POLICIES[dtype]
            why = f"{POLICY_ULPS} unit roundoffs of {dtype}'s compute dtype (u = {u:.2g}, IEEE 754 / bfloat16)"
            return Tol(POLICY_ULPS * u, 8 * POLICY_ULPS * u, 8 * POLICY_ULPS * u, why)
        for (b, d, t), tol in self.tol_overrides.items():
            if all(k in ("*", v) for k, v in zip((b, d, t), (backend, device, dtype))):
                score = sum(k != "*" for k in (b, d, t))
                if score > best_score:
                    best, best_score = tol, score
        return best

    def case(self, name: str) -> Case:
        for c in self.cases:
            if c.name == name:
                return c
        raise KeyError(name)
