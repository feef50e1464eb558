"""Every model the suite checks: its cases, input specs, seed and tolerances, in one table.

Tolerances are against the float64 reference, for float32 runs. Each carries its reason;
measured float32 errors (README, "What the numbers mean") sit 25-200x below them, and a
semantic change (a BatchNormalization epsilon, a padding, a gate) lands far above.
"""

from keras_parity.spec import Case, Inp, ModelSpec, Tol

X = Inp  # short alias for the literal table below

REGISTRY: dict[str, ModelSpec] = {
    "linear": ModelSpec(
        module="models.linear",
        seed=1001,
        cases=(
            Case("dense_nobias", "dense_nobias", {"x": X((4, 5))}),
            Case("sigmoid_mlp", "sigmoid_mlp", {"x": X((4, 5))}),
            Case("scale_layer", "scale_layer", {"x": X((4, 6))}),
            Case("branch_a", "branch_select", {"x": X((4, 5)), "flag": X((4, 1), fill=1.0)}),
            Case("branch_b", "branch_select", {"x": X((4, 5)), "flag": X((4, 1), fill=0.0)}),
        ),
        tol=Tol(1e-5, 1e-6, 1e-5, "a few float32 roundings (eps 1.2e-7); sigmoid_mlp's small outputs inflate rel L2"),
    ),
    "cnn": ModelSpec(
        module="models.cnn",
        seed=1002,
        cases=(
            Case("conv2d", "conv2d", {"x": X((2, 8, 8, 3))}),
            Case("conv1d_same", "conv1d_same", {"x": X((3, 7, 2))}),
            Case("conv1d_valid", "conv1d_valid", {"x": X((3, 7, 2))}),
        ),
        tol=Tol(1e-5, 1e-5, 1e-4, "sums of up to 384 float32 products, in backend-chosen order"),
    ),
    "bn_mlp": ModelSpec(
        module="models.bn_mlp",
        seed=1003,
        cases=(
            Case("inference", "bn_mlp", {"x": X((6, 8))}),
            Case("training", "bn_mlp", {"x": X((6, 8))}, mode="train"),
            Case("moving_stats", "bn_mlp", {"x": X((6, 8))}, mode="moving_stats"),
        ),
        tol=Tol(1e-5, 1e-5, 1e-4, "rsqrt and batch moments in float32; epsilon 1e-3 vs 1e-2 moves outputs ~1e-2"),
    ),
    "lstm": ModelSpec(
        module="models.lstm",
        seed=1004,
        cases=(Case("lstm", "lstm", {"x": X((4, 10, 1))}),),
        tol=Tol(1e-5, 1e-5, 1e-4, "10 recurrent steps of float32 sigmoid/tanh, error compounds"),
    ),
    "resnet50": ModelSpec(
        module="models.resnet50",
        seed=1005,
        cases=(Case("logits", "resnet50", {"x": X((2, 224, 224, 3), 0.0, 1.0)}, classifier=True),),
        tol=Tol(1e-4, 1e-3, 1e-3, "53 conv layers of up to 4608-term float32 sums; BN folding order varies"),
        # Damp each residual branch's last BatchNormalization (as zero-init-gamma schemes do) so
        # 16 residual additions keep logits O(1-10) instead of O(1000).
        weight_scale={"*_3_bn/gamma": 0.3},
    ),
}
