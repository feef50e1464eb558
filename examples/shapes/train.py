"""Train the example model: a small CNN telling four 8x8 shapes apart, on data made here.

    KERAS_BACKEND=jax python examples/shapes/train.py

Writes shapes.keras (the trained model) and inputs.npz (16 held-out images) beside this file.
No download: the images are drawn with NumPy from a fixed seed. The project's own code does
not define this model; the suite only ever loads the saved file.
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLASSES = ("horizontal bar", "vertical bar", "diagonal", "square")


def draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n noisy 8x8 images, each one shape at a random place and brightness, and its class."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.15, size=(n, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, len(CLASSES), size=n)
    for img, label in zip(x, y):
        r, c, v = rng.integers(1, 6), rng.integers(1, 6), rng.uniform(0.6, 1.0)
        if label == 0:
            img[r, c - 1 : c + 3, 0] += v
        elif label == 1:
            img[r - 1 : r + 3, c, 0] += v
        elif label == 2:
            for k in range(-1, 3):
                img[r + k, c + k if c + k < 8 else 7, 0] += v
        else:
            img[r : r + 2, c : c + 2, 0] += v
    return x, y.astype(np.int32)


def build():
    import keras
    from keras import layers

    x = keras.Input((8, 8, 1), name="image")
    h = layers.Conv2D(8, 3, padding="same", name="conv1")(x)
    h = layers.BatchNormalization(name="bn1")(h)
    h = layers.ReLU(name="relu1")(h)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Conv2D(16, 3, activation="relu", name="conv2")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(32, activation="relu", name="dense")(h)
    h = layers.Dense(len(CLASSES), name="logits")(h)
    return keras.Model(x, layers.Activation("softmax", name="probabilities")(h), name="shapes")


def main() -> None:
    import keras

    keras.utils.set_random_seed(0)
    x, y = draw(3000, seed=1)
    x_test, y_test = draw(500, seed=2)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=6, batch_size=64, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"held-out accuracy {accuracy:.3f} on {len(x_test)} images")
    model.save(HERE / "shapes.keras")
    np.savez(HERE / "inputs.npz", image=x_test[:16])


if __name__ == "__main__":
    main()
