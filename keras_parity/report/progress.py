"""Progress of the backend processes: one rich bar per backend, the models it has done of
those it was given, the one it is on (each runner names it in <backend>.progress), the time
elapsed and rich's estimate of the rest."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class BackendProgress:
    """Use as a context manager; pass `update` as run_backends' `on_poll`."""

    def __init__(self, console, backends: list[str], models: list[str]):
        self.models = list(models)
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), console=console, transient=True,
        )  # fmt: skip
        self.tasks = {b: self.bars.add_task(f"{b}: starting", total=len(self.models)) for b in backends}

    def __enter__(self) -> BackendProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def update(self, running: dict[str, str | None]) -> None:
        """`running`: backend -> the model it is on (None: still importing); a backend no
        longer in it has finished."""
        for backend, task in self.tasks.items():
            if backend not in running:
                self.bars.update(task, completed=len(self.models), description=f"{backend}: done")
                continue
            model = running[backend]
            done = self.models.index(model) if model in self.models else 0
            self.bars.update(task, completed=done, description=f"{backend}: {model or 'starting'}")
