"""The watch list: discrepancies of Keras and its backends this suite has reproduced, each
tracked until a release fixes it.

A watch case (CASES) is a reproducer in keras_parity/watch/cases/ (keras and numpy only; its
docstring is the issue's text) and the upstream issue, if one is filed. golden/watch.json
keeps, per case and backend, the state it is expected in ('present' or 'absent') and the
releases that state was seen on. Every backend process of `parity` runs every case after the
models (`observe`, well under a second); the judge (keras_parity/watch/judge.py) sets what
they observed beside golden/watch.json: one line in the report, and a case that stops
reproducing (fixed) or starts where it was absent fails the run, as a strict xfail does,
until its entry says so (`nox -s watch -- --update`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

UPSTREAM = "https://github.com/keras-team/keras/issues/"


@dataclass(frozen=True)
class WatchCase:
    id: str
    module: str  # keras_parity.watch.cases.<module>: its check(*args) and its docstring
    args: tuple[str, ...]
    upstream: str = ""  # the issue, when one is filed; else the module's docstring is the draft

    def check(self) -> dict:
        """What the reproducer observes in this process: present, measure, detail."""
        return importlib.import_module(f"keras_parity.watch.cases.{self.module}").check(*self.args)

    def text(self) -> str:
        """The issue's text: the reproducer's docstring."""
        return importlib.import_module(f"keras_parity.watch.cases.{self.module}").__doc__ or ""


CASES = (
    WatchCase("float64-matmul-in-float32", "float64_ops", ("matmul",), UPSTREAM + "23704"),
    WatchCase("float64-tanh-in-float32", "float64_ops", ("tanh",), UPSTREAM + "23704"),
    WatchCase("float64-batch-norm-in-float32", "float64_ops", ("batch_norm",)),
    WatchCase("float32-constant-rescaling", "float32_constants", ("rescaling",)),
    WatchCase("float32-constant-gelu", "float32_constants", ("gelu",)),
    WatchCase("float32-constant-leaky-relu", "float32_constants", ("leaky_relu",)),
    WatchCase("float32-constant-normalization", "float32_constants", ("normalization",)),
    WatchCase("float32-constant-attention-scale", "float32_constants", ("attention_scale",)),
    WatchCase("normalization-stats-until-finalize", "normalization_until_finalize", ()),
    WatchCase("sparsemax-cumulative-sum", "sparsemax_cumsum", (), UPSTREAM + "23425"),
)


def observe(backend: str) -> dict[str, dict]:
    """Every case, run here on `backend`: {case id: its observation}; a reproducer that raises
    is recorded with its error (present None), the others still run."""
    out: dict[str, dict] = {}
    for case in CASES:
        try:
            seen = case.check()
            present, measure, detail = bool(seen["present"]), float(seen["measure"]), str(seen["detail"])
            out[case.id] = {"present": present, "measure": measure, "detail": detail}
        except Exception as exc:  # a release that breaks the reproducer itself: said, not hidden
            out[case.id] = {"present": None, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    return out
