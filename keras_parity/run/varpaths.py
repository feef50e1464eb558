"""Each variable's path by where it sits in the layer tree, read off the layer objects.

Keras names a variable by the name scope it was created under (`v.path`). A model built in
one go gets '<layer>/<leaf>', but a model loaded from a .keras file builds its wrapped and
nested layers outside their parent's scope: a Bidirectional's GRU kernel comes back as
'forward_gru/gru_cell/kernel', a nested Sequential's Dense as 'dense/bias' (which may then
clash with the outer model's own 'dense/bias'). The float64 reference walks the config, so
every run names each variable by the chain of layer names from the model down to the layer
that owns it, the same chain the config spells: 'bigru/forward_gru/gru_cell/kernel',
'seqblk3/dense/bias'. For a model built in one go (every built-in model) that is `v.path`.
"""

from __future__ import annotations

from keras_parity.errors import UsageError


class VariablePathError(UsageError, ValueError):
    """Two variables of one model would get the same path (a layer tree Keras would not save)."""


def _leaf(variable) -> str:
    # A variable's own name, without any scope ('kernel'; ConvNeXt's LayerScale: 'variable_3').
    return variable.path.rsplit("/", 1)[-1]


def variable_paths(model) -> list[str]:
    """One path per `model.weights` entry, in that order: the owning layer's chain of names,
    then the variable's own name. Walks the layers as `Layer.weights` does (own variables
    first, then each tracked sub-layer), so a shared layer keeps the first path it is seen at."""
    found: dict[int, str] = {}

    def walk(layer, prefix: str) -> None:
        for v in layer._trainable_variables + layer._non_trainable_variables:
            found.setdefault(id(v), prefix + _leaf(v))
        for sub in layer._layers:
            walk(sub, f"{prefix}{sub.name}/")

    walk(model, "")
    paths = [found.get(id(v), v.path) for v in model.weights]
    _check_distinct(paths)
    return paths


def path_of(model) -> dict[int, str]:
    """{id(variable): its path (variable_paths)} over `model.weights`, for code that holds a
    variable (a trainable one, a BatchNormalization statistic) and needs its name."""
    return {id(v): p for v, p in zip(model.weights, variable_paths(model))}


def _check_distinct(paths: list[str]) -> None:
    if len(set(paths)) != len(paths):
        clash = sorted({p for p in paths if paths.count(p) > 1})
        raise VariablePathError(f"variables share the path(s) {clash}; give the layers that own them distinct names")


def weights_by_path(model) -> dict:
    """{variable path (variable_paths): the variable's value as a NumPy array}."""
    import keras

    return {p: keras.ops.convert_to_numpy(v) for p, v in zip(variable_paths(model), model.weights)}
