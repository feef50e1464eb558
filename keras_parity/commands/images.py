"""`keras-parity images`: build the backend images (cpu; --cuda adds the CUDA variants), or prune them."""

from __future__ import annotations

import argparse

from keras_parity.commands.selection import pick
from keras_parity.exitcodes import Exit
from keras_parity.pins import pinned_version
from keras_parity.registry.spec import BACKENDS

HELP = "build the backend images (cpu; --cuda adds the CUDA variants)"
NEEDS_CHECKOUT = True  # the images build from the checkout's docker/ folder
# The published TensorFlow CPU image of the pinned release: what the images' sizes are held against.
UPSTREAM_TF = f"tensorflow/tensorflow:{pinned_version('tensorflow-cpu')}"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("images", help=HELP)
    p.add_argument("--backend", action="append", help="build only this backend's image (repeatable)")
    p.add_argument("--cuda", action="store_true", help="also build the CUDA variants")
    p.add_argument("--base-image", help="base image to build on, e.g. an offline one (docker/engine.sh)")
    p.add_argument("--compare", default=UPSTREAM_TF, help="an image in the engine to compare sizes with")
    p.add_argument("--prune", action="store_true", help="remove images and cache volumes no current lock builds")
    return p


def run(args, console) -> Exit:
    from rich.table import Table

    from keras_parity.run.envs import EnvError
    from keras_parity.run.images import build, engine, prune, upstream_size_mb

    backends = pick("backend", args.backend, BACKENDS)
    engine()  # no daemon: one line and exit 3 before any image is tried
    if args.prune:
        console.print(f"pruned: {prune(backends, log=console.print):.0f} MB of images freed")
        return Exit.OK
    devices = ["cpu", "cuda"] if args.cuda else ["cpu"]
    t = Table(title="keras-parity images")
    for col in ("image", "build seconds", "size (MB)", f"vs {args.compare}"):
        t.add_column(col, justify="left" if col == "image" else "right")
    failed = 0
    for b in backends:
        for d in devices:
            try:
                r = build(b, d, base_image=args.base_image, log=console.print)
            except EnvError as exc:  # one image that does not build; the others still do
                console.print(f"[red]error[/]: {exc}", soft_wrap=True)
                failed += 1
                continue
            upstream = upstream_size_mb(args.compare)
            ratio = f"{r['size_mb'] / upstream:.2f}x" if upstream else "-"
            t.add_row(r["tag"], f"{r['seconds']:.1f}", f"{r['size_mb']:.0f}", ratio)
    console.print(t)
    if failed < len(backends) * len(devices) and upstream_size_mb(args.compare) is None:
        console.print(
            f"{args.compare} is not in this engine, so sizes are not compared with it; "
            f"`docker pull {args.compare}` where a registry is reachable, then rerun",
            soft_wrap=True,
        )
    return Exit.INFRA if failed else Exit.OK
