"""Which layers of a model config the float64 reference implements: the gaps are named before
anything runs, and a model nested in another is looked into."""

from __future__ import annotations

from keras_parity.reference.layers import LAYERS, UnsupportedLayer
from keras_parity.reference.operators import OPS, is_operator


def is_model(layer) -> bool:
    """A Keras Sequential or functional model used as a layer of this one."""
    module, name = layer.get("module"), layer["class_name"]
    return (name == "Sequential" and module == "keras") or (
        name == "Functional" and module == "keras.src.models.functional"
    )


def implemented(layer) -> bool:
    if is_operator(layer):  # `x + 3.0`, ops.mean(...): a node of keras.src.ops
        return layer["class_name"] in OPS
    # A class registered outside this project is a user's own, whatever its name: its math is
    # unknown here even when the name matches one of ours.
    if is_model(layer):
        return all(implemented(inner) for inner in layer["config"]["layers"])
    registered = layer.get("registered_name")
    # Keras's own applications register their custom layers too (ConvNeXt's LayerScale).
    keras_own = str(layer.get("module", "")).startswith("keras.src.applications.")
    own = registered is None or registered.startswith("keras_parity>") or keras_own
    return layer["class_name"] == "InputLayer" or (layer["class_name"] in LAYERS and own)


def reference_gaps(config) -> list[str]:
    """The layer types of a model config the float64 reference does not implement."""
    if "layers" not in config:
        return [config.get("class_name", "a model without a layer graph")]
    missing = [layer for layer in config["layers"] if not implemented(layer)]
    sequential = [layer for layer in missing if is_model(layer)]
    nested = {gap for layer in sequential for gap in reference_gaps(layer["config"])}
    return sorted({_kind(layer) for layer in missing if layer not in sequential} | nested)


def _kind(layer) -> str:
    if is_operator(layer):
        return f"operator {layer['module'].rsplit('.', 1)[1]}.{layer['class_name']}"
    return layer.get("registered_name") or layer["class_name"]


def refuse_gaps(config, name):
    gaps = reference_gaps(config)
    if gaps:
        raise UnsupportedLayer(
            f"float64 reference has no implementation of layer type '{gaps[0]}' (inside '{name}'); "
            "add one in keras_parity/reference/layers.py"
        )
