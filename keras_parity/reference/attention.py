"""MultiHeadAttention in float64, registered into LAYERS of keras_parity/reference/layers.py:
the query, key and value projections, scaled dot-product attention with an optional
attention mask and causal mask, and the output projection, as keras.layers.MultiHeadAttention
computes them at inference (no dropout, no gate, attention over the sequence axis)."""

from __future__ import annotations

import math

import autograd.numpy as np

from keras_parity.reference.layers import UnsupportedLayer, _register, _require
from keras_parity.reference.ops import softmax


def _project(x, p, name, use_bias):
    y = np.einsum("btd,dnh->btnh", x, p(f"{name}/kernel"))
    return y + p(f"{name}/bias") if use_bias else y


@_register("MultiHeadAttention")
def _multi_head_attention(cfg, p, args, training):
    _require(cfg, use_gate=(False,), sliding_window=(None,), output_shape=(None,))
    if list(cfg.get("attention_axes") or [1]) != [1]:
        raise UnsupportedLayer(f"float64 reference implements attention over axis 1 only (layer '{cfg.get('name')}')")
    if training and cfg.get("dropout", 0.0) > 0:
        raise UnsupportedLayer(f"float64 reference cannot draw the attention dropout of '{cfg.get('name')}'")
    kw = dict(cfg.get("call_kwargs") or {})
    positional = list(args) + [None] * 3
    query = kw.get("query", positional[0])
    value = kw.get("value", positional[1])
    key = kw.get("key", positional[2])
    key = value if key is None else key
    bias = cfg.get("use_bias", True)
    q = _project(query, p, "query", bias) / math.sqrt(cfg["key_dim"])
    k, v = _project(key, p, "key", bias), _project(value, p, "value", bias)
    scores = np.einsum("bsnh,btnh->bnts", k, q)
    mask = np.ones(scores.shape[-2:], dtype=bool)
    if kw.get("use_causal_mask"):
        mask = np.tril(mask)  # query t attends keys s <= t
    if kw.get("attention_mask") is not None:
        mask = np.logical_and(mask, np.asarray(kw["attention_mask"])[:, None] > 0.5)
    weights = np.where(mask, softmax(np.where(mask, scores, -1e9), axis=-1), 0.0)
    attended = np.einsum("bnts,bsnh->btnh", weights, v)
    out = np.einsum("btnh,nhd->btd", attended, p("attention_output/kernel"))
    return out + p("attention_output/bias") if bias else out
