"""The drift report: golden/drift/report.md with one PNG per model, and the change events.

An event is a release on an axis (keras, or the backend library) at which a model case's
bits differ from the previous release recorded on that axis, everything else held; it stays
at rounding level when both releases are within tolerance of the float64 reference, and
exceeds tolerance otherwise.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from keras_parity import golden
from keras_parity.drift.driver import DRIFT, snapshot_path
from keras_parity.drift.history import HISTORY, read
from keras_parity.drift.matrix import Cell, version_key
from keras_parity.judge.numerics import max_ulp

REPORT = HISTORY.parent / "report.md"


def events(rows: list[dict], root: Path = DRIFT) -> list[dict]:
    """One event per (series, release, model case path) whose bits differ from the previous
    recorded release of the series, from the snapshots, so the order cells were recorded in
    does not matter. A series walks one axis with everything else held."""
    series: defaultdict[tuple, dict[str, dict]] = defaultdict(dict)  # series -> release -> row
    for r in rows:
        cell = (r["model"], r["case"], r["path"])
        series[("keras", r["platform"], r["backend"], r["library_version"], cell)][r["keras"]] = r
        series[("library", r["platform"], r["backend"], r["keras"], cell)][r["library_version"]] = r
    snapshots: dict[Path, dict] = {}

    def arrays(r: dict) -> dict:
        path = snapshot_path(Cell(r["backend"], r["keras"], r["library_version"]), r["platform"], root)
        if path not in snapshots:
            snapshots[path] = golden.read_npz(path) if path.exists() else {}
        prefix = golden.key(r["model"], r["case"], r["path"]) + golden.SEP
        return {k: v for k, v in snapshots[path].items() if k.startswith(prefix)}

    out = []
    for (axis, _, backend, held, cell), releases in series.items():
        order = sorted(releases, key=version_key)
        for before_v, after_v in zip(order, order[1:]):
            before, after = releases[before_v], releases[after_v]
            a, b = arrays(before), arrays(after)
            if a and b:
                # outputs both snapshots hold (cases added later, e.g. the training path, are new)
                common = [k for k in a if k in b and a[k].shape == b[k].shape]
                if not common or all(a[k].tobytes() == b[k].tobytes() for k in common):
                    continue
                ulp = max_ulp(b, a, common)
            else:  # snapshots not on disk (a clone, or re-keyed): what the row recorded when it ran
                if after[f"prev_{axis}"] != before_v or after[f"same_bits_prev_{axis}"] != "no":
                    continue
                ulp = int(after[f"max_ulp_prev_{axis}"])
            within = before["verdict"] == "pass" and after["verdict"] == "pass"
            out.append(
                {
                    "backend": backend,
                    "axis": "keras" if axis == "keras" else backend,
                    "release": after_v,
                    "from": before_v,
                    "with": f"{backend} {held}" if axis == "keras" else f"keras {held}",
                    "cell": "/".join(cell),
                    "max_ulp": ulp,
                    "rel_l2_before": before["rel_l2"],
                    "rel_l2": after["rel_l2"],
                    "level": "rounding" if within else "exceeds tolerance",
                }
            )
    return out


def _series_plot(ax, rows, x_of, line_of, xlabel, title):
    xs_all = sorted({x_of(r) for r in rows}, key=version_key)
    for line in sorted({line_of(r) for r in rows}, key=lambda v: version_key(v.split()[-1])):
        worst = defaultdict(float)  # the worst case/path of the model per release
        for r in rows:
            if line_of(r) == line:
                worst[x_of(r)] = max(worst[x_of(r)], float(r["rel_l2"]))
        if len(worst) < 2 and len(xs_all) > 1:
            continue  # a single point belongs to the other axis's plot
        xs = [i for i, v in enumerate(xs_all) if v in worst]
        ax.plot(xs, [worst[xs_all[i]] for i in xs], marker="o", label=line)
    for tol in {float(r["tol_rel_l2"]) for r in rows if r["tol_rel_l2"]}:
        ax.axhline(tol, color="red", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(xs_all)), xs_all, rotation=30, fontsize=7)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("rel. L2 vs float64", fontsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)


def _plot(model: str, rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = sorted({r["backend"] for r in rows})
    fig, axes = plt.subplots(2, len(backends), figsize=(4.2 * len(backends), 6.4), squeeze=False)
    for col, backend in enumerate(backends):
        mine = [r for r in rows if r["backend"] == backend and r["rel_l2"]]
        _series_plot(
            axes[0][col],
            mine,
            lambda r: r["library_version"],
            lambda r: f"keras {r['keras']}",
            f"{backend} release",
            f"{model} on {backend}: by {backend} release",
        )
        _series_plot(
            axes[1][col],
            mine,
            lambda r: r["keras"],
            lambda r: f"{r['backend']} {r['library_version']}",
            "keras release",
            f"{model} on {backend}: by keras release",
        )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, metadata={"Software": None})
    plt.close(fig)


def _releases_section(path: Path) -> list[str]:
    """The releases `drift --new` found (golden/drift/releases.json), installable or not and why."""
    if not path.exists():
        return []
    head = "| release | uploaded | python, platform | checked | verdict | reason |\n|---|---|---|---|---|---|"
    lines = ["## Releases found by `--new`", "", *head.split("\n")]
    for e in json.loads(path.read_text())["releases"]:
        lines.append(
            f"| {e['library']} {e['version']} | {e['uploaded'][:10]} | {e['python']}, {e['platform']} "
            f"| {e['checked'][:10]} | {e['verdict']} | {e['reason']} |"
        )
    return [*lines, ""]


def write(path: Path = HISTORY, report: Path = REPORT, root: Path = DRIFT) -> Path:
    rows = read(path)
    ran = [r for r in rows if r["model"] != "*"]
    n_cells = len({(r["platform"], r["backend"], r["keras"], r["library_version"]) for r in rows})
    lines = [
        "# Drift report",
        "",
        f"From `{path.name}`: {n_cells} cells, "
        f"{len(rows)} rows. Regenerated by `nox -s drift`; red dashed lines are the tolerances.",
        "",
    ]
    for model in sorted({r["model"] for r in ran}):
        png = report.parent / "plots" / f"{model}.png"
        _plot(model, [r for r in ran if r["model"] == model], png)
        lines += [f"![{model}](plots/{png.name})", ""]
    evs = events(ran, root)
    lines += ["## Numbers changed at", ""]
    if not evs:
        lines += ["No release changed any bits among the cells recorded.", ""]
    else:
        lines += [
            "| release | vs | with | model case/path | max ULP | rel L2 before → after | level |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in sorted(evs, key=lambda e: (e["axis"], version_key(e["release"]), e["with"], e["cell"])):
            lines.append(
                f"| {e['axis']} {e['release']} | {e['from']} | {e['with']} | {e['cell']} | {e['max_ulp']} "
                f"| {e['rel_l2_before']} → {e['rel_l2']} | {e['level']} |"
            )
        lines.append("")
    lines += _releases_section(report.parent / "releases.json")
    failed = [r for r in rows if r["model"] == "*"]
    if failed:
        lines += ["## Cells that did not run", "", "| cell | verdict | reason |", "|---|---|---|"]
        for r in failed:
            lines.append(
                f"| keras={r['keras']} {r['backend']}={r['library_version']} | {r['verdict']} | {r['reason']} |"
            )
        lines.append("")
    report.write_text("\n".join(lines))
    return report
