"""Whole-process cost of classifying one image: `fmnist-edge classify` vs a bare LiteRT script vs Keras.

Each command runs as a fresh process, N times, interleaved so drift on a shared machine hits all
three alike. Reported: median wall time and median peak RSS (from wait4, per child), and the
ratio of the CLI to the bare script measured in the same run. This is a benchmark, not a test.

    python scripts/startup_bench.py [--runs 15] [--image examples/test_0000_ankle_boot.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The "bare 8-line script": load the same int8 model with ai-edge-litert and invoke it once.
BARE = """\
import sys, numpy as np
from PIL import Image
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1]); it.allocate_tensors()
x = np.asarray(Image.open(sys.argv[2]).convert("L"), dtype=np.uint8)[None, :, :, None]
it.set_tensor(it.get_input_details()[0]["index"], x); it.invoke()
print(int(it.get_tensor(it.get_output_details()[0]["index"]).argmax()))
"""

KERAS = """\
import sys, numpy as np
from PIL import Image
import keras
model = keras.models.load_model(sys.argv[1], compile=False)
x = np.asarray(Image.open(sys.argv[2]).convert("L"), dtype=np.float32)[None, :, :, None]
print(int(model.predict(x, verbose=0).argmax()))
"""


def run_once(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: {' '.join(argv)}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--image", default="examples/test_0000_ankle_boot.png")
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--no-keras", action="store_true", help="skip the TensorFlow/Keras baseline")
    args = parser.parse_args()

    python = sys.executable
    cli = shutil.which("fmnist-edge", path=str(Path(python).parent)) or "fmnist-edge"
    tflite = str(Path(args.artifacts) / "fmnist_cnn_int8.tflite")
    keras_model = str(Path(args.artifacts) / "fmnist_cnn.keras")
    with tempfile.TemporaryDirectory() as tmp:
        bare, keras_script = Path(tmp, "bare.py"), Path(tmp, "keras_one.py")
        bare.write_text(BARE)
        keras_script.write_text(KERAS)
        commands = {
            "fmnist-edge classify": [cli, "classify", args.image],
            "bare LiteRT script": [python, str(bare), tflite, args.image],
        }
        if not args.no_keras:
            commands["TensorFlow/Keras script"] = [python, str(keras_script), keras_model, args.image]
        for argv in commands.values():  # warm the page cache once
            run_once(argv)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                samples[name].append(run_once(argv))

    print(f"{'command':<26} {'median wall':>12} {'peak RSS':>10}   ({args.runs} runs each, {args.image})")
    medians = {}
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        rss = statistics.median(r for _, r in runs)
        medians[name] = wall
        print(f"{name:<26} {1000 * wall:>9.0f} ms {rss:>7.0f} MB")
    ratio = medians["fmnist-edge classify"] / medians["bare LiteRT script"]
    print(f"classify / bare script wall-time ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
