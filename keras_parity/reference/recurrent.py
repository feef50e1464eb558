"""Recurrent layers beyond LSTM: GRU, SimpleRNN, and Bidirectional around any of the three,
registered into LAYERS (keras_parity/reference/registry.py) (an option not implemented raises)."""

from __future__ import annotations

import autograd.numpy as np

from keras_parity.reference.ops import UnsupportedLayer, gru, lstm, simple_rnn
from keras_parity.reference.registry import register, require, single_input

CELLS = {"LSTM": "lstm_cell", "GRU": "gru_cell", "SimpleRNN": "simple_rnn_cell"}


def _sequence(class_name, cfg, read, x, training):
    """Every step's output of one recurrent layer over x (batch, time, features), in the order
    Keras returns them: with go_backwards, the reversed input's steps."""
    require(cfg, stateful=(False,), unroll=(False, True))
    if training and (cfg.get("dropout", 0) > 0 or cfg.get("recurrent_dropout", 0) > 0):
        raise UnsupportedLayer(f"float64 reference cannot reproduce the dropout masks of '{cfg.get('name')}'")
    cell = CELLS[class_name]
    kernel, recurrent = read(f"{cell}/kernel"), read(f"{cell}/recurrent_kernel")
    bias = read(f"{cell}/bias") if cfg.get("use_bias", True) else None
    if cfg.get("go_backwards", False):
        x = x[:, ::-1]
    act, rec_act = cfg.get("activation", "tanh"), cfg.get("recurrent_activation", "sigmoid")
    if class_name == "LSTM":
        return lstm(x, kernel, recurrent, bias, act, rec_act, return_sequences=True)[0]
    if class_name == "GRU":
        return gru(x, kernel, recurrent, bias, act, rec_act, reset_after=cfg.get("reset_after", True))
    return simple_rnn(x, kernel, recurrent, bias, act)


def _rnn(class_name, cfg, p, args, training):
    require(cfg, return_state=(False,))
    seq = _sequence(class_name, cfg, p, single_input(args), training)
    return seq if cfg.get("return_sequences", False) else seq[:, -1]


@register("GRU")
def _gru(cfg, p, args, training):
    return _rnn("GRU", cfg, p, args, training)


@register("SimpleRNN")
def _simple_rnn(cfg, p, args, training):
    return _rnn("SimpleRNN", cfg, p, args, training)


MERGES = {
    "concat": lambda a, b: np.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "ave": lambda a, b: (a + b) / 2.0,
}


@register("Bidirectional")
def _bidirectional(cfg, p, args, training):
    """The forward layer and the backward one (go_backwards), each with its own weights under
    '<bidirectional>/<forward_x|backward_x>/'; the backward sequence reversed back to time order."""
    mode = cfg.get("merge_mode", "concat")
    if mode not in MERGES:
        raise UnsupportedLayer(f"float64 reference does not implement merge_mode={mode!r} (layer '{cfg.get('name')}')")
    x, outs = single_input(args), []
    for which in ("forward", "backward"):
        inner = cfg.get(f"{which}_layer") or cfg["layer"]
        kind, inner_cfg = inner["class_name"], dict(inner["config"])
        if kind not in CELLS:
            what = f"Bidirectional({kind})"
            raise UnsupportedLayer(f"float64 reference does not implement {what} (layer '{cfg.get('name')}')")
        require(inner_cfg, return_state=(False,))
        if which == "backward" and not cfg.get("backward_layer"):
            inner_cfg["go_backwards"] = not inner_cfg.get("go_backwards", False)
        # Keras names them forward_<layer> and backward_<layer>; the config keeps the first.
        name = inner_cfg["name"]
        if which == "backward" and not cfg.get("backward_layer"):
            name = "backward_" + name.removeprefix("forward_")
        seq = _sequence(kind, inner_cfg, p.child(name), x, training)
        if inner_cfg.get("return_sequences", False):
            outs.append(seq[:, ::-1] if which == "backward" else seq)
        else:
            outs.append(seq[:, -1])
    return MERGES[mode](*outs)
