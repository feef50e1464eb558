"""A layer's view of the model's weights, keyed by variable path, as the graph walk hands it to
each adapter."""

from __future__ import annotations


class Params:
    """One layer's view of the weights: p("kernel") reads "<layer>/kernel" as float64. The
    weights are keyed by the chain of layer names down to their owner, read off the layer
    objects (keras_parity/run/varpaths.py), the chain this module walks in the config."""

    def __init__(self, layer, state, used, updated):
        self.layer, self.state, self.used, self.updated = layer, state, used, updated

    def __call__(self, leaf):
        path = f"{self.layer}/{leaf}"
        if path not in self.state:  # built under a name scope (NASNet's blocks): 'scope/layer/leaf'
            scoped = [k for k in self.state if k.endswith(f"/{path}")]
            path = scoped[0] if len(scoped) == 1 else path
        if path not in self.state:
            have = sorted(k for k in self.state if k.startswith(self.layer + "/"))
            raise KeyError(f"layer '{self.layer}' needs weight '{path}'; weights under it: {have}")
        self.used.add(path)
        return self.state[path]

    def only(self):
        """The layer's one weight, whatever its leaf is called (a bare tf.Variable-style name,
        'variable_3', numbered per process as in ConvNeXt's LayerScale)."""
        (path,) = [k for k in self.state if k.startswith(self.layer + "/") and "/" not in k[len(self.layer) + 1 :]]
        self.used.add(path)
        return self.state[path]

    def child(self, name):
        """The view of a layer inside this one (a wrapper's, a nested Sequential's): its
        weights under '<this layer>/<name>/', as Keras names them."""
        return Params(f"{self.layer}/{name}" if self.layer else name, self.state, self.used, self.updated)

    def update(self, leaf, value):
        # Later calls of a shared layer must see the assigned value, as Keras's would.
        path = f"{self.layer}/{leaf}"
        self.state[path] = self.updated[path] = value
