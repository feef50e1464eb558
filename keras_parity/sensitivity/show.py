"""What `keras-parity sensitivity` shows: a table per model case, results/sensitivity.json, a plot."""

from __future__ import annotations

import datetime
from collections import defaultdict
from pathlib import Path

from keras_parity.golden import files
from keras_parity.sensitivity import CEILING, HIDDEN, Threshold

CAUGHT_BY = {"compare": "outputs", "layers": "layer sketches"}  # a finding's kind, as the table says it


def _cell(r: Threshold | None) -> str:
    if r is None:
        return "-"
    if r.caught is None:
        return f"[red]> {r.passed:.1e}[/]" if r.passed is not None else "[red]?[/]"
    mark = "" if r.confirmed else "[yellow]*[/]"
    colour = "red" if r.hidden else "green"
    return f"[{colour}]{r.caught:.1e}[/]{mark}"


def table(rows: list[Threshold], backends: list[str], console) -> None:
    """One table per model case: each layer's least caught change of its output, then of its
    weights, per backend, and the layers where a change hides named with what would catch it."""
    from rich.table import Table

    for (model, case), mine in _by_case(rows).items():
        t = Table(title=f"{model}/{case}: the least change of a layer that fails the verdict (relative)")
        t.add_column("layer")
        for target in ("output", "weights"):
            for b in backends:
                t.add_column(f"{target} {b}", justify="right")
        t.add_column("caught by")
        layers = list(dict.fromkeys(r.layer for r in mine))
        at = {(r.layer, r.target, r.backend): r for r in mine}
        for layer in layers:
            cells = [_cell(at.get((layer, target, b))) for target in ("output", "weights") for b in backends]
            by = sorted(
                {CAUGHT_BY.get(k, k) for r in mine if r.layer == layer and r.caught is not None for k in r.caught_by}
            )
            t.add_row(layer, *cells, ", ".join(by))
        console.print(t)
        for line in blind_spots(mine):
            console.print(f"[red]hidden[/] {line}", soft_wrap=True)
    unconfirmed = sum(not r.confirmed and r.caught is not None for r in rows)
    console.print(
        f"{len(rows)} thresholds, {sum(r.confirmed for r in rows)} confirmed by a planted run failing at the "
        f"threshold and passing at a third of it; {unconfirmed} marked * (the bracket did not close); "
        f"{sum(r.hidden for r in rows)} hidden (a change of {HIDDEN:.0%} or more passes)",
        soft_wrap=True,
    )


def blind_spots(rows: list[Threshold]) -> list[str]:
    """A line per layer and target whose change can reach HIDDEN and pass, with what would catch it."""
    out = []
    for r in rows:
        if not r.hidden:
            continue
        size = f"{r.passed:.0%}" if r.passed is not None else f"{CEILING:.0%}"
        out.append(
            f"{r.model}/{r.case} on {r.backend}: a change of {size} in '{r.layer}' ({r.target}) passes; {fix(r)}"
        )
    return out


def fix(r: Threshold) -> str:
    """What would catch a hidden change, from what its gains say."""
    if r.estimate is None:
        return (
            "nothing the suite judges moves with it under these inputs (a branch they never take, "
            "units a ReLU keeps off): give more inputs or a wider input range (--inputs)"
        )
    if r.outputs_only is not None and r.caught is None:
        return "the outputs barely move with it: judging each layer's output (the built-in models' sketches) would"
    return "more inputs or a different input range would make the outputs move with it"


def write_json(rows: list[Threshold], out: Path) -> Path:
    """results/sensitivity.json: every threshold, written whole or not at all."""
    data = {
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "hidden_above": HIDDEN,
        "thresholds": [r.as_json() for r in rows],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(out, data)
    return out


def plot(rows: list[Threshold], out_dir: Path) -> list[Path]:
    """One plot per model case: each layer's threshold per backend and target, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for (model, case), mine in _by_case(rows).items():
        layers = list(dict.fromkeys(r.layer for r in mine))
        index = {name: i for i, name in enumerate(layers)}
        fig, ax = plt.subplots(figsize=(max(6.0, len(layers) * 0.05 + 4), 3.6))
        series = defaultdict(list)
        for r in mine:
            series[r.backend, r.target].append((index[r.layer], r.caught if r.caught is not None else CEILING))
        for (backend, target), points in sorted(series.items()):
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="o" if target == "output" else "x", linewidth=0.8, label=f"{target}, {backend}")
        ax.axhline(HIDDEN, color="red", linestyle="--", linewidth=0.8)
        ax.set_yscale("log")
        if len(layers) <= 40:
            ax.set_xticks(range(len(layers)), layers, rotation=60, fontsize=7, ha="right")
        ax.set_xlabel("layer (graph order)")
        ax.set_ylabel("least change caught (relative)")
        ax.set_title(f"{model}/{case}: what the verdict catches, layer by layer", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{model}-{case}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90, metadata={"Software": None})
        plt.close(fig)
        written.append(path)
    return written


def _by_case(rows: list[Threshold]) -> dict[tuple[str, str], list[Threshold]]:
    grouped: dict[tuple[str, str], list[Threshold]] = defaultdict(list)
    for r in rows:
        grouped[r.model, r.case].append(r)
    return grouped
