"""The compact CNN: a plain VGG-style stack that quantizes to full-integer TFLite and exports to ONNX.

Only Conv2D, BatchNormalization, ReLU, Add (the optional shortcuts), MaxPooling, GlobalAveragePooling,
Dropout and Dense are used, so every converter handles the graph without custom ops. The shape lives in ModelConfig
(train/config.py), which the training record saves with the rest of the configuration.
"""

from __future__ import annotations

from fmnist_edge.runtime.spec import INPUT_SHAPE, NUM_CLASSES, PIXEL_MEAN, PIXEL_STD
from fmnist_edge.train.config import ModelConfig

PARAM_LIMIT = 500_000


def parse_stages(text: str) -> tuple[tuple[int, ...], ...]:
    """`32/64,64/128,128,128` -> ((32,), (64, 64), (128, 128, 128)): the shape as a command line gives it."""
    try:
        shape = tuple(tuple(int(width) for width in stage.split(",")) for stage in text.split("/"))
    except ValueError:
        raise ValueError(f"{text!r}: want channels per conv, commas within a stage and slashes between "
                         "stages, e.g. 32/64,64/128,128,128") from None
    if any(width < 1 for stage in shape for width in stage):
        raise ValueError(f"{text!r}: every conv needs at least one channel")
    return shape


def check_buildable(config: ModelConfig) -> None:
    """Refuse, before any data loads, a shape that Keras could not build: each stage but the last
    halves the 28x28 map, which must keep at least one pixel; and the parameter limit."""
    size = INPUT_SHAPE[0]
    for _ in config.stages[:-1]:
        size //= 2
    if not config.stages or any(not stage for stage in config.stages) or size < 1:
        raise ValueError(f"{format_stages(config.stages)!r}: {len(config.stages)} stages pool the "
                         f"{INPUT_SHAPE[0]}x{INPUT_SHAPE[1]} input below one pixel; use at most 5 stages")
    params = param_count(config)
    if params >= PARAM_LIMIT:
        raise ValueError(f"{format_stages(config.stages)!r} makes a model of {params} parameters; "
                         f"the limit is {PARAM_LIMIT}")


def format_stages(stages: tuple[tuple[int, ...], ...]) -> str:
    """The inverse of parse_stages."""
    return "/".join(",".join(map(str, stage)) for stage in stages)


def param_count(config: ModelConfig) -> int:
    """What build_model(config).count_params() returns, without TensorFlow: checked before data loads.

    Per conv: 3x3 kernels without bias, then BatchNorm's four vectors; then the dense layer with bias.
    """
    count, channels = 0, INPUT_SHAPE[-1]
    for widths in config.stages:
        for width in widths:
            count += 9 * channels * width + 4 * width
            channels = width
    return count + channels * NUM_CLASSES + NUM_CLASSES


def build_model(config: ModelConfig | None = None, name: str = "fmnist_cnn"):
    """Build the Keras model. Input: raw pixels 0..255, float32 NHWC. Output: 10 logits."""
    config = config or ModelConfig()
    import keras
    from keras import layers

    inputs = keras.Input(shape=INPUT_SHAPE, dtype="float32", name="pixels")
    # (x/255 - mean)/std folded into one affine op; it lives in the graph so every format agrees.
    x = layers.Rescaling(
        scale=1.0 / (255.0 * PIXEL_STD), offset=-PIXEL_MEAN / PIXEL_STD, name="normalize"
    )(inputs)
    for s, widths in enumerate(config.stages):
        for c, width in enumerate(widths):
            y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"s{s}_conv{c}")(x)
            y = layers.BatchNormalization(name=f"s{s}_bn{c}")(y)
            if config.residual and c > 0 and widths[c - 1] == width:
                y = layers.Add(name=f"s{s}_add{c}")([x, y])
            x = layers.ReLU(name=f"s{s}_relu{c}")(y)
        if s < len(config.stages) - 1:
            x = layers.MaxPooling2D(2, name=f"s{s}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def count_macs(model) -> int:
    """Multiply-accumulates per image for Conv2D and Dense layers (BN folds away at export)."""
    from keras import layers

    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            macs += h * w * cout * kh * kw * cin
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)
