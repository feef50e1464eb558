"""The zoo's models: every keras.applications architecture at the smallest input it accepts,
and the kinds of model teams bring (a transformer text classifier, a recurrent sequence model).

Each is a builder the `--model package.module:function` path imports in every backend's runner
(`keras_parity.zoo.models:ResNet50`), so the zoo runs the pipeline a user's model runs: seeded
NumPy weights, the float64 reference, the same judge. Inputs are drawn here, in the harness,
and handed over as an .npz (`--inputs`), because token ids cannot be drawn as floats.
"""

from __future__ import annotations

import numpy as np

# Every architecture of keras.applications, with the smallest square input it accepts (its
# own check refuses less: 75 for the Inceptions, 71 for Xception, 32 for the rest).
ARCHITECTURES = {
    **dict.fromkeys(("ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"), 32),
    **dict.fromkeys(("DenseNet121", "DenseNet169", "DenseNet201"), 32),
    **dict.fromkeys((f"EfficientNetB{i}" for i in range(8)), 32),
    **dict.fromkeys((f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "S", "M", "L")), 32),
    "InceptionResNetV2": 75,
    "InceptionV3": 75,
    **dict.fromkeys(("MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large"), 32),
    "NASNetMobile": 32,
    "NASNetLarge": 32,
    **dict.fromkeys(("ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2"), 32),
    "VGG16": 32,
    "VGG19": 32,
    "Xception": 71,
}
CLASSES = 10  # a small head: logits of 10 classes tell a changed network as well as 1000 do
BATCH = 2
VOCABULARY, TOKENS = 64, 12


# Damping of residual branches, as the built-in ResNet50's: with the seeded weights as drawn,
# EfficientNetV2's 16 to 79 swish and squeeze-excitation blocks grow the residual stream to
# O(1000) and amplify float32 rounding into the logits on every backend (the float64 reference
# is right: Keras in float64 meets it); halving the last BatchNormalization of each block keeps
# the logits O(0.1 to 1) (docs/measurements.md, "Constants and the numbers behind them").
WEIGHT_SCALE = {f"EfficientNetV2{s}": {"*project_bn/gamma": 0.5} for s in ("B0", "B1", "B2", "B3", "S", "M", "L")}


def application(name: str):
    """keras.applications.<name> with no download: logits (no softmax to saturate), seeded
    weights come after, from the runner. The input is named, so that every backend's process
    names it alike (Keras numbers unnamed inputs by what the process built before)."""
    import keras

    side = ARCHITECTURES[name]
    build = getattr(keras.applications, name)
    image = keras.Input((side, side, 3), name="image")
    return build(weights=None, input_tensor=image, classes=CLASSES, classifier_activation=None)


def transformer_classifier():
    """A small transformer text classifier: token embeddings, two blocks of causal self-
    attention and a gelu feed-forward layer, each with a residual and LayerNormalization,
    mean pooling, logits."""
    import keras
    from keras import layers as L

    ids = keras.Input((TOKENS,), dtype="int32", name="ids")
    x = L.Embedding(VOCABULARY, 32, name="tokens")(ids)
    for i in range(2):
        a = L.MultiHeadAttention(num_heads=4, key_dim=8, name=f"attention_{i}")(x, x, use_causal_mask=True)
        x = L.LayerNormalization(name=f"norm_a{i}")(x + a)
        f = L.Dense(32, name=f"ff_out{i}")(L.Dense(64, activation="gelu", name=f"ff_in{i}")(x))
        x = L.LayerNormalization(name=f"norm_f{i}")(x + f)
    return keras.Model(ids, L.Dense(4, name="logits")(L.GlobalAveragePooling1D()(x)), name="transformer_classifier")


def sequence_model():
    """A recurrent sequence model: Conv1D with swish, max pooling, a bidirectional GRU,
    dropout, a sigmoid head."""
    import keras
    from keras import layers as L

    x = keras.Input((24, 6), name="signal")
    y = L.MaxPooling1D(2, name="pool")(L.Conv1D(16, 3, activation="swish", name="conv")(x))
    y = L.Dropout(0.2, name="dropout")(L.Bidirectional(L.GRU(12), name="bi_gru")(y))
    return keras.Model(x, L.Dense(1, activation="sigmoid", name="score")(y), name="sequence_model")


EXAMPLES = {"transformer_classifier": transformer_classifier, "sequence_model": sequence_model}
# The zoo's names, in the order its table lists them; MobileNetV3Small is the third example.
NAMES = (*EXAMPLES, *sorted(ARCHITECTURES))


def __getattr__(name: str):
    """`keras_parity.zoo.models:<Architecture>`: each architecture's builder, by name."""
    if name in ARCHITECTURES:
        return lambda: application(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def inputs(name: str, seed: int) -> np.ndarray:
    """A model's one input: pixel values in [0, 255] as the architectures take them (their
    preprocessing lies in or before the model), token ids, a signal in [-1, 1]."""
    rng = np.random.default_rng([seed, *name.encode()])
    if name == "transformer_classifier":
        return rng.integers(0, VOCABULARY, (BATCH, TOKENS)).astype(np.int32)
    if name == "sequence_model":
        return rng.uniform(-1.0, 1.0, (BATCH, 24, 6)).astype(np.float32)
    side = ARCHITECTURES[name]
    return rng.uniform(0.0, 255.0, (BATCH, side, side, 3)).astype(np.float32)
