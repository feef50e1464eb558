"""MultiHeadAttention and Attention in float64, registered into LAYERS
(keras_parity/reference/registry.py): the query, key and value projections, scaled dot-product
attention with an optional attention mask and causal mask, and the output projection, as
keras.layers.MultiHeadAttention computes them at inference (no dropout, no gate, attention over
the sequence axis); and the single-head, projection-free attention of keras.layers.Attention."""

from __future__ import annotations

import math

import autograd.numpy as np

from keras_parity.reference.ops import UnsupportedLayer, softmax
from keras_parity.reference.registry import register, require


def _project(x, p, name, use_bias):
    y = np.einsum("btd,dnh->btnh", x, p(f"{name}/kernel"))
    return y + p(f"{name}/bias") if use_bias else y


@register("MultiHeadAttention")
def _multi_head_attention(cfg, p, args, training):
    require(cfg, use_gate=(False,), sliding_window=(None,), output_shape=(None,))
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


@register("Attention")
def _attention(cfg, p, args, training):
    """keras.layers.Attention: scores q.k (times 'scale') or, score_mode 'concat',
    concat_score_weight * sum(tanh(scale * (q + k))); softmax over the keys; a masked key's
    score lowered by 1e9 as Keras does (not replaced), so a row with every key masked still
    averages them. mask=[query_mask, value_mask]: a masked query's output is zero."""
    require(cfg, score_mode=("dot", "concat"))
    if training and cfg.get("dropout", 0.0) > 0:
        raise UnsupportedLayer(f"float64 reference cannot draw the attention dropout of '{cfg.get('name')}'")
    kw = dict(cfg.get("call_kwargs") or {})
    if kw.get("return_attention_scores"):
        raise UnsupportedLayer(
            f"float64 reference does not implement return_attention_scores=True (layer '{cfg.get('name')}')"
        )
    inputs = list(args[0] if len(args) == 1 else args)
    q, v = inputs[0], inputs[1]
    k = inputs[2] if len(inputs) > 2 else v
    scale = p("scale") if cfg.get("use_scale", False) else None
    if cfg.get("score_mode", "dot") == "dot":
        scores = q @ np.swapaxes(k, -2, -1)
        scores = scores if scale is None else scores * scale
    else:
        pairs = q[..., :, None, :] + k[..., None, :, :]
        pairs = pairs if scale is None else scale * pairs
        scores = p("concat_score_weight") * np.sum(np.tanh(pairs), axis=-1)
    q_mask, v_mask = (list(kw.get("mask") or []) + [None, None])[:2]
    keep = None if v_mask is None else (np.asarray(v_mask) > 0.5)[..., None, :]
    if kw.get("use_causal_mask"):
        causal = np.tril(np.ones(scores.shape[-2:], dtype=bool))  # query t sees keys s <= t
        keep = causal if keep is None else np.logical_and(keep, causal)
    if keep is not None:
        scores = np.where(keep, scores, scores - 1e9)
    out = softmax(scores, axis=-1) @ v
    return out if q_mask is None else np.where((np.asarray(q_mask) > 0.5)[..., None], out, 0.0)
