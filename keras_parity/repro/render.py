"""The reproducer's script and README, filled in from the files of templates/: repro.py, a
Python file ruff lints, whose marked constants and `$name` docstring fields are replaced, and
README.md, a string.Template."""

from __future__ import annotations

import json
import re
from importlib import resources
from string import Template

# A line of the template that opens (`# repro: when NAME`) or closes (`# repro: end`) a block
# kept only when NAME is true.
_WHEN = re.compile(r"^# repro: when (\w+)\n(.*?)^# repro: end\n", re.M | re.S)
CALLS = {
    "predict": "`model.predict_on_batch(x)`",
    "eager": "`model(x, training=False)`",
    "call": "`model(x, training=True)`",
}


def template(name: str) -> str:
    """The text of templates/NAME, as shipped in the package."""
    return resources.files("keras_parity.repro").joinpath("templates", name).read_text()


def _set_constant(text: str, name: str, literal: str) -> str:
    """The template with the value of its module constant NAME replaced, its comment kept."""
    line = re.compile(rf"^{name} = .*?(  # .*)?$", re.M)
    if len(line.findall(text)) != 1:
        raise ValueError(f"the reproducer template sets {name} {len(line.findall(text))} times, not once")
    return line.sub(lambda m: f"{name} = {literal}{m[1] or ''}", text)


def script(model, case, backend, paths, training, inputs, as_list, custom, env, normalization) -> str:
    """repro.py of one cell: the template with its constants and fields filled in."""
    d = json.dumps  # Python literals of strings and lists of strings, in double quotes
    settings = "{\n" + "".join(f"    {d(k)}: {d(v)},\n" for k, v in sorted(env.items())) + "}"
    constants = {
        "BACKEND": d(backend), "PATHS": d(paths), "TRAINING": repr(training), "INPUTS": d(inputs),
        "AS_LIST": repr(as_list), "CUSTOM": d(custom), "SETTINGS": settings,
    }  # fmt: skip
    text = template("repro.py")
    for name, literal in constants.items():
        text = _set_constant(text, name, literal)
    text = _WHEN.sub(lambda m: m[2] if {"normalization": normalization}[m[1]] else "", text)
    return Template(text).substitute(model=model, case=case, backend=backend)


def readme(suite: dict, config: dict, script: str, custom: list[str]) -> str:
    """README.md of one cell: the upstream issue's text, with what the suite measured and the script."""
    v, backend = suite["versions"], suite["backend"]
    lib_version = v.get(backend) or v.get(f"{backend}-cpu", "?")
    layers = [layer["class_name"] for layer in config.get("layers", []) if layer["class_name"] != "InputLayer"]
    rows = [
        f"| {path} | {out} | {m['rel_l2']:.4e} | {m['max_abs']:.4e} | {c['tolerance'] or 0:.1e} | {c['status']} |"
        for path, c in suite["measured"].items()
        for out, m in c["outputs"].items()
    ]
    found = sorted({f"- {p}" for c in suite["measured"].values() if c["status"] != "pass" for p in c["problems"]})
    files = "repro.py, model.json (keras.Model.from_config), weights.npz, inputs.npz, expected.npz" + (
        ", " + ", ".join(custom) + " (the model's own layers)" if custom else ""
    )
    return Template(template("README.md")).substitute(
        cell=suite["cell"],
        backend=backend,
        layer_count=len(layers),
        layer_classes=", ".join(sorted(set(layers))),
        calls=" and ".join(CALLS[p] for p in suite["measured"]),
        device=suite["device"],
        cpu=suite["cpu"],
        rows="\n".join(rows),
        findings="\nThe suite's findings:\n" + "\n".join(found) + "\n" if found else "",
        python=v.get("python"),
        numpy=v.get("numpy"),
        keras=v.get("keras"),
        lib_version=lib_version,
        install=f"pip install keras=={v.get('keras')} numpy=={v.get('numpy')} {backend}=={lib_version}",
        files=files,
        script=script.rstrip(),
    )
