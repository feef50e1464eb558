"""Native twins of the built-in models: the same models written in plain PyTorch, plain JAX
and tf_keras (Keras 2), with the Keras weights ported in (port.py), judged by the same goldens.
"""

# twin -> (the environment it runs in, named after its lock; the library whose knobs it sets)
ENV = {"torch-native": ("torch", "torch"), "jax-native": ("jax", "jax"), "tf_keras": ("tf_keras", "tensorflow")}
MODULES = {
    "torch-native": "keras_parity.twins.torch_native",
    "jax-native": "keras_parity.twins.jax_native",
    "tf_keras": "keras_parity.twins.tf_keras_native",
}
