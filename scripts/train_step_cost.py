"""Cost of one training step: the default network with and without XLA (`jit_compile`), against
another shape (`--stages`), or in float32 against mixed bfloat16 (`--bfloat16`), in one process.

    python scripts/train_step_cost.py [--steps 20] [--rounds 5] [--batch-size 128]
    python scripts/train_step_cost.py --stages 32/64,64/128,128,128
    python scripts/train_step_cost.py --bfloat16

Why it exists: XLA or TensorFlow's own kernels (`train` uses the latter, by this script),
`ModelConfig.stages` and the precision decide what a full training run costs, and what a change
costs depends on the CPU and the TensorFlow build (bfloat16 pays only where the CPU has a bfloat16
dot product). Each round trains `--steps` steps on random images with each variant in turn (each
model compiled once, so compilation is not timed), so a noisy, shared machine slows both alike.
Prints the median wall and CPU milliseconds per step of each variant and their ratio: compare by
that ratio, measured in the same run. CPU time is the steadier of the two where other jobs share
the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time


def stages(text: str) -> tuple[tuple[int, ...], ...]:
    """argparse's type for --stages: a malformed shape becomes one usage line."""
    from fmnist_edge.train.model import parse_stages

    try:
        return parse_stages(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--stages", type=stages, help="Compare the default network (no XLA) with this shape "
                        "instead: channels per conv, commas within a stage, slashes between stages.")
    parser.add_argument("--bfloat16", action="store_true", help="Compare the default network in float32 with "
                        "the same in mixed bfloat16 (`train --precision bfloat16`) instead.")
    args = parser.parse_args()

    import keras
    import numpy as np

    from fmnist_edge.common.keras_model import in_precision
    from fmnist_edge.train.model import ModelConfig, build_model, count_macs, format_stages

    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    images = rng.integers(0, 256, size=(n, 28, 28, 1)).astype("float32")
    targets = np.eye(10, dtype="float32")[rng.integers(0, 10, size=n)]
    default = ModelConfig()
    if args.stages:
        shown = format_stages(args.stages)
        variants = {"default network": (default, False, "float32"),
                    f"stages {shown}": (ModelConfig(stages=args.stages), False, "float32")}
    elif args.bfloat16:
        variants = {"float32": (default, False, "float32"), "mixed bfloat16": (default, False, "bfloat16")}
    else:
        variants = {"jit_compile False": (default, False, "float32"), "jit_compile True": (default, True, "float32")}
    models = {}
    for name, (shape, jit, precision) in variants.items():
        model = in_precision(build_model(shape), precision)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=jit)
        model.fit(images[: 2 * args.batch_size], targets[: 2 * args.batch_size], batch_size=args.batch_size,
                  verbose=0)  # compiles
        models[name] = model
    wall: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            w, c = time.perf_counter(), time.process_time()
            model.fit(images, targets, batch_size=args.batch_size, verbose=0)
            wall[name].append(1000 * (time.perf_counter() - w) / args.steps)
            cpu[name].append(1000 * (time.process_time() - c) / args.steps)
    print(f"{args.rounds} rounds of {args.steps} steps, batch {args.batch_size}; medians, ms per step")
    print("| variant | params | M MACs/image | wall | CPU |")
    print("|---|---:|---:|---:|---:|")
    for name, model in models.items():
        print(f"| {name} | {model.count_params():,} | {count_macs(model) / 1e6:.1f} | "
              f"{statistics.median(wall[name]):.0f} | {statistics.median(cpu[name]):.0f} |")
    first, second = models
    print(f"{second} / {first}: wall {statistics.median(wall[second]) / statistics.median(wall[first]):.2f}x, "
          f"CPU {statistics.median(cpu[second]) / statistics.median(cpu[first]):.2f}x")


if __name__ == "__main__":
    main()
