"""Print the README's headline table, measured on this machine, and the machine it ran on.

    python scripts/readme_figures.py [--manifest-only]

Accuracy and sizes come from artifacts/manifest.json (what export measured, never retyped; a
test checks that the README holds these rows: `--manifest-only` prints just them). Real-photo
accuracy is classify's answers on the 36 test photos in tests/data/photos. Latency is the median
of batch-1, one-thread calls of each bundled TFLite model on LiteRT, as `fmnist-edge bench` times
them, measured in the same run so the ratio holds even on a busy machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "artifacts" / "manifest.json"
FP32, INT8 = "fmnist_cnn_fp32.tflite", "fmnist_cnn_int8.tflite"


def manifest_rows(manifest: dict) -> list[str]:
    """The rows whose figures the manifest holds: test accuracy and file size of each TFLite model."""
    models = {m["file"]: m for m in manifest["models"]}
    fp32, int8 = models[FP32], models[INT8]
    return [
        f"| test accuracy, 10k Fashion-MNIST test images | {100 * fp32['test_accuracy']:.2f}% "
        f"| {100 * int8['test_accuracy']:.2f}% | `fmnist-edge evaluate artifacts/{INT8}` |",
        f"| model file | {fp32['size_bytes'] / 1024:,.0f} KiB | {int8['size_bytes'] / 1024:,.0f} KiB "
        "| `ls -l artifacts/` |",
    ]


def photo_row() -> str:
    from fmnist_edge.runtime import Classifier
    from fmnist_edge.runtime.photo_eval import evaluate_photos

    folder = ROOT / "tests" / "data" / "photos"
    cells = []
    for name in (FP32, INT8):
        summary = evaluate_photos(folder, folder / "labels.csv", Classifier(ROOT / "artifacts" / name))
        right = sum(r.correct for r in summary.results)
        cells.append(f"{right}/{len(summary.results)} = {100 * summary.accuracy:.1f}%")
    return (f"| real photos, 36 CC0 test photos | {cells[0]} | {cells[1]} "
            "| `fmnist-edge evaluate-photos tests/data/photos` |")


def latency_row() -> tuple[str, dict]:
    from fmnist_edge.runtime import machine
    from fmnist_edge.runtime.bench import Settings, bench_inputs, bench_target, targets

    found, _ = targets([ROOT / "artifacts" / FP32, ROOT / "artifacts" / INT8], backend="litert")
    settings = Settings(batches=(1,))
    inputs, _ = bench_inputs(1)
    p50 = {}
    for target in found:
        single = [t for t in target.threads if t == 1] or list(target.threads[:1])
        rows = bench_target(type(target)(**{**target.__dict__, "threads": tuple(single)}), inputs, settings)
        p50[target.path.name] = rows[0].p50_ms
    ratio = p50[FP32] / p50[INT8]
    row = (f"| latency, one image, one thread (LiteRT) | {p50[FP32]:.3f} ms | {p50[INT8]:.3f} ms "
           f"({ratio:.1f}x faster) | `fmnist-edge bench` |")
    return row, machine.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest-only", action="store_true", help="Only the rows the manifest gives.")
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text())
    if args.manifest_only:
        print("\n".join(manifest_rows(manifest)))
        return
    latency, where = latency_row()
    print("| | float (fp32 TFLite) | int8 TFLite (the default) | printed by |")
    print("|---|---:|---:|---|")
    print("\n".join([*manifest_rows(manifest), photo_row(), latency]))
    print(f"\nmachine: {json.dumps(where)}")


if __name__ == "__main__":
    main()
