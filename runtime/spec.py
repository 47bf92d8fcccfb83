"""The contract every stage shares: class names, image size, pixel range, preprocessing version.

Training imports these, export writes them into model metadata and the manifest, and the
runtime reads them back. Nothing else in the project may retype them.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)

IMAGE_SIZE = 28
INPUT_SHAPE: tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, 1)  # NHWC without the batch
# Raw pixels 0..255 go in as uint8 (int8 models) or float32 (float models); scores come out as
# float32, or as 8-bit integers that the model's own scale and zero point turn back into float.
INPUT_DTYPES: tuple[str, ...] = ("uint8", "float32")
OUTPUT_DTYPES: tuple[str, ...] = ("float32", "uint8", "int8")

# Models take raw pixels 0..255 and normalize inside the graph, so every exported format has
# the same input contract. These constants are the in-graph normalization: x / 255 then
# (x - MEAN) / STD, with MEAN and STD measured on the 60k training images.
PIXEL_MEAN = 0.2860
PIXEL_STD = 0.3530

# Bump when photo preprocessing changes the pixels it produces: it is stored with each model.
PREPROCESS_VERSION = 2  # 2: colour bins in YCbCr, dataset-exact centring

# What models emit: ten raw scores per image; the runtime applies softmax.
OUTPUT_KIND = "logits"


def input_contract() -> dict[str, object]:
    """The input/output contract as plain data, for model metadata and the manifest."""
    return {
        "layout": "NHWC",
        "shape": [None, *INPUT_SHAPE],
        "pixel_range": [0, 255],
        "normalization": "inside the model: (x/255 - mean) / std",
        "mean": PIXEL_MEAN,
        "std": PIXEL_STD,
        "output": f"{NUM_CLASSES} {OUTPUT_KIND}",
        "preprocess_version": PREPROCESS_VERSION,
    }
