"""Every model the suite checks: its cases, input specs, seed and tolerances, in one table
(`builtin_models`, read through keras_parity.registry.builtin.builtin_registry).

Tolerances are against the float64 reference. On a CPU in float32, each cell's is ten times
the float32 noise measured for it (models/noise.json, `nox -s noise`; docs/concepts.md, "Tolerances");
the ones written below, each with its reason, hold where nothing is measured: a GPU, a case
added since the last measurement.
"""

from keras_parity.registry.spec import TRAIN_STEPS, Case, Inp, ModelSpec, Tol

X = Inp  # short alias for the literal table below


def training_cases(builder, inputs, classifier=False, modes=("grad", "sgd", "adam"), **tols):
    """The gradients of the loss, then TRAIN_STEPS steps of SGD with momentum and of Adam;
    tolerances by mode (grad=, sgd=, adam=) override TRAIN_TOL's."""
    return tuple(
        Case(f"train_{mode}", builder, inputs, mode=mode, classifier=classifier, tol=tols.get(mode, TRAIN_TOL[mode]))
        for mode in modes
    )


# Training outputs are compared per group, atol in units of the group's RMS (spec.Tol). The
# optimizer deltas' error is equal on all three backends: after each step the weight is stored
# in float32, which puts |w| * 2^-24 into the delta, whose size is only lr * |g| (the measured
# errors: docs/measurements.md, "Constants and the numbers behind them").
_GRAD = Tol(1e-5, 1e-4, 1e-3, "a backward pass of a few float32 roundings per value")
_STEP = Tol(1e-4, 1e-3, 1e-2, f"{TRAIN_STEPS} float32 weight stores of |w| * 2^-24 on deltas of lr * |g|")
TRAIN_TOL = {"grad": _GRAD, "sgd": _STEP, "adam": _STEP}


def builtin_models() -> dict[str, ModelSpec]:
    """The built-in models by name; each module is named under keras_parity.models."""
    return {
        "linear": ModelSpec(
            module="keras_parity.models.linear",
            seed=1001,
            cases=(
                Case("dense_nobias", "dense_nobias", {"x": X((4, 5))}),
                Case("sigmoid_mlp", "sigmoid_mlp", {"x": X((4, 5))}),
                Case("scale_layer", "scale_layer", {"x": X((4, 6))}),
                Case("branch_a", "branch_select", {"x": X((4, 5)), "flag": X((4, 1), fill=1.0)}),
                Case("branch_b", "branch_select", {"x": X((4, 5)), "flag": X((4, 1), fill=0.0)}),
                *training_cases("sigmoid_mlp", {"x": X((4, 5))}),
            ),
            tol=Tol(
                1e-5, 1e-6, 1e-5, "a few float32 roundings (eps 1.2e-7); sigmoid_mlp's small outputs inflate rel L2"
            ),
        ),
        "cnn": ModelSpec(
            module="keras_parity.models.cnn",
            seed=1002,
            cases=(
                Case("conv2d", "conv2d", {"x": X((2, 8, 8, 3))}),
                Case("conv1d_same", "conv1d_same", {"x": X((3, 7, 2))}),
                Case("conv1d_valid", "conv1d_valid", {"x": X((3, 7, 2))}),
                *training_cases("conv2d", {"x": X((2, 8, 8, 3))}),
            ),
            tol=Tol(1e-5, 1e-5, 1e-4, "sums of up to 384 float32 products, in backend-chosen order"),
        ),
        "bn_mlp": ModelSpec(
            module="keras_parity.models.bn_mlp",
            seed=1003,
            cases=(
                Case("inference", "bn_mlp", {"x": X((6, 8))}),
                Case("training", "bn_mlp", {"x": X((6, 8))}, mode="train"),
                Case("moving_stats", "bn_mlp", {"x": X((6, 8))}, mode="moving_stats"),
                # dense_in's bias has an exact gradient of zero (BatchNormalization subtracts the
                # batch mean); float32 leaves a rounding residue, which Adam divides by
                # sqrt(v) + 1e-7 into a sizeable part of a step (docs/measurements.md).
                *training_cases(
                    "bn_mlp",
                    {"x": X((6, 8))},
                    adam=Tol(5e-3, 2e-2, 1e-2, "Adam turns the rounding noise of a zero gradient into steps"),
                ),
            ),
            tol=Tol(1e-5, 1e-5, 1e-4, "rsqrt and batch moments in float32; epsilon 1e-3 vs 1e-2 moves outputs ~1e-2"),
        ),
        "lstm": ModelSpec(
            module="keras_parity.models.lstm",
            seed=1004,
            cases=(Case("lstm", "lstm", {"x": X((4, 10, 1))}), *training_cases("lstm", {"x": X((4, 10, 1))})),
            tol=Tol(1e-5, 1e-5, 1e-4, "10 recurrent steps of float32 sigmoid/tanh, error compounds"),
        ),
        "resnet50": ModelSpec(
            module="keras_parity.models.resnet50",
            seed=1005,
            cases=(
                Case("logits", "resnet50", {"x": X((2, 224, 224, 3), 0.0, 1.0)}, classifier=True),
                # Gradients, and Adam() as users write it; SGD's steps are checked on the small
                # models (214 variables' updates cost seconds per optimizer and backend).
                # Backprop through 16 training-mode BatchNormalizations amplifies float32 rounding
                # from the logits down, on all three backends alike (docs/measurements.md).
                *training_cases(
                    "resnet50_64",  # at 64x64 (models/resnet50.py): a twelfth of the arithmetic
                    {"x": X((2, 64, 64, 3), 0.0, 1.0)},
                    classifier=True,
                    modes=("grad", "adam"),
                    # Elementwise, an error reaches the group's RMS where the amplification gathers.
                    grad=Tol(3e-2, 1.0, 1e-1, "float32 rounding amplified by batch-statistics backprop"),
                ),
            ),
            tol=Tol(1e-4, 1e-3, 1e-3, "53 conv layers of up to 4608-term float32 sums; BN folding order varies"),
            # Damp each residual branch's last BatchNormalization (as zero-init-gamma schemes do) so
            # 16 residual additions keep logits O(1-10) instead of O(1000).
            weight_scale={"*_3_bn/gamma": 0.3},
        ),
    }
