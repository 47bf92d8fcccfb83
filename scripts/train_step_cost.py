"""Cost of one training step of the shipped network, with and without XLA (`jit_compile`), in one process.

    python scripts/train_step_cost.py [--steps 20] [--rounds 5] [--batch-size 128]

Why it exists: `TrainConfig.jit_compile` decides what a full training run costs, and which way is
cheaper depends on the CPU and the TensorFlow build. Each round trains `--steps` steps on random
images with each setting in turn (two models compiled once each, so compilation is not timed), so a
noisy, shared machine slows both alike. Prints the median wall and CPU milliseconds per step of each
setting and the ratio XLA / no XLA: compare by that ratio, measured in the same run. CPU time is the
steadier of the two where other jobs share the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import keras
    import numpy as np

    from fmnist_edge.train.model import build_model

    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    images = rng.integers(0, 256, size=(n, 28, 28, 1)).astype("float32")
    targets = np.eye(10, dtype="float32")[rng.integers(0, 10, size=n)]
    models = {}
    for jit in (False, True):
        model = build_model()
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=jit)
        model.fit(images[: 2 * args.batch_size], targets[: 2 * args.batch_size], batch_size=args.batch_size,
                  verbose=0)  # compiles
        models[jit] = model
    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for jit, model in models.items():
            w, c = time.perf_counter(), time.process_time()
            model.fit(images, targets, batch_size=args.batch_size, verbose=0)
            wall[jit].append(1000 * (time.perf_counter() - w) / args.steps)
            cpu[jit].append(1000 * (time.process_time() - c) / args.steps)
    print(f"{args.rounds} rounds of {args.steps} steps, batch {args.batch_size}; medians, ms per step")
    print("| jit_compile | wall | CPU |")
    print("|---|---:|---:|")
    for jit in (False, True):
        print(f"| {jit} | {statistics.median(wall[jit]):.0f} | {statistics.median(cpu[jit]):.0f} |")
    print(f"XLA / no XLA: wall {statistics.median(wall[True]) / statistics.median(wall[False]):.2f}x, "
          f"CPU {statistics.median(cpu[True]) / statistics.median(cpu[False]):.2f}x")


if __name__ == "__main__":
    main()
