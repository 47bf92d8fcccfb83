"""The commands of the export stage: `export` (convert, check parity, publish) and `evaluate`.

TensorFlow and tf2onnx are imported inside the commands, only when a .keras model is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.exits import EXIT_INTERRUPTED
from fmnist_edge.options import TRAINED_MODEL, DataDir, Threads, Verbose, fail, require
from fmnist_edge.quiet import quiet_unless_verbose
from fmnist_edge.runtime.errors import FmnistEdgeError, UsageError


@quiet_unless_verbose
def export_cmd(
    model: Annotated[
        Path, typer.Argument(help="Trained Keras model; its training record is read from beside it.")
    ] = TRAINED_MODEL,
    int8: Annotated[bool, typer.Option("--int8", help="Also write full-integer int8 TFLite and ONNX.")] = False,
    formats: Annotated[str, typer.Option(help="Comma-separated: tflite, onnx.")] = "tflite,onnx",
    out: Annotated[Path | None, typer.Option(help="Output folder.", show_default="the model's folder")] = None,
    calibration: Annotated[
        int, typer.Option(min=10, max=60_000, help="Training images used to calibrate int8 (10 to 60000).")
    ] = 500,
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1, help="Seed for picking calibration images.")] = 0,
    photos: Annotated[
        Path | None,
        typer.Option(help="Labelled photos with a `val` split: the unsure threshold is raised until the answers "
                          "not flagged are >= 90% right on them.", file_okay=False, exists=True),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace existing exported models.")] = False,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Export to float TFLite and ONNX (and int8 with --int8); refuse any model that fails parity.

    Each model is checked on the 10k test images against the Keras model before anything is
    written: float formats must agree on every top-1 within 1e-3, int8 models must stay within
    0.3 pp of the Keras accuracy and agree on >= 99% of top-1 predictions. Writes manifest.json
    beside the models, with sizes, SHA-256 and the measured figures. The shipped models were made
    with `fmnist-edge export artifacts/fmnist_cnn.keras --int8 --force --out artifacts`.

    Safe to interrupt or to run twice: the arguments, --out's free space and a lock on --out are
    checked before any work (a second export into the same folder is refused), the work is staged
    in a hidden folder inside --out that is removed on exit (and by the next export, after a
    kill), and the manifest is published last, so the folder always holds one complete export.

    Exit codes: 0 exported; 1 a model failed parity (nothing was written) or the Fashion-MNIST
    files are missing; 2 usage error (bad option, missing or unreadable model, existing files
    without --force, --out unwritable, full or locked by another export, TensorFlow or tf2onnx not
    installed); 130 interrupted (Ctrl-C or SIGTERM; --out keeps its previous export).
    """
    from fmnist_edge.interrupt import StopOnSignals

    try:
        kinds = tuple(k.strip() for k in formats.split(",") if k.strip())
        if not kinds:
            raise UsageError(f"--formats {formats!r} names no format; choose from tflite, onnx (comma-separated)")
        require("tensorflow", "tensorflow", "train")
        require("tf2onnx", "tf2onnx", "train")
        from fmnist_edge.export.pipeline import ExportOptions, export

        options = ExportOptions(kinds=kinds, int8=int8, calibration_size=calibration, seed=seed, force=force,
                                photos=photos)
        with StopOnSignals(raise_at_once=True):  # SIGTERM unwinds like Ctrl-C, so staging is removed
            export(model, out or model.parent, options, data_dir=data_dir, log=typer.echo)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; {out or model.parent} keeps its previous export", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


@quiet_unless_verbose
def evaluate(
    model: Annotated[Path, typer.Argument(help="A .keras, .tflite or .onnx model.")],
    out: Annotated[
        Path | None, typer.Option(help="Report folder.", show_default="<model folder>/report/<model name>")
    ] = None,
    threads: Threads = None,
    plots: Annotated[bool, typer.Option(help="Write the PNG report images.")] = True,
    mirror_average: Annotated[
        bool,
        typer.Option("--mirror-average", help="Score classify's answers (each image averaged with its mirror "
                     "image) instead of the model alone; the report folder name gets -mirror-average."),
    ] = False,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Accuracy, per-class precision/recall/F1 and confusions on the full 10k test set, plus report files.

    Exit codes: 0 evaluated; 1 the Fashion-MNIST files are missing or corrupt; 2 usage error (bad
    option, missing or unusable model, TensorFlow or matplotlib not installed when needed).
    """
    from fmnist_edge.runtime.spec import CLASS_NAMES

    try:
        if model.suffix == ".keras":
            require("tensorflow", "tensorflow", "train")
        if plots:
            require("matplotlib", "matplotlib", "train")
        from fmnist_edge.train.evaluate import run

        out_dir = out or model.parent / "report" / (model.stem + ("-mirror-average" if mirror_average else ""))
        result = run(model, out_dir, data_dir=data_dir, threads=threads, plots=plots, mirror_average=mirror_average)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    how = ", averaged with mirror images as classify does" if mirror_average else ""
    typer.echo(f"{model}: test accuracy {100 * result.accuracy:.2f}% on {int(result.confusion.sum())} images{how}")
    if result.mirror_disagreement is not None:
        typer.echo(f"  without averaging, mirroring an image changes the model's answer for "
                   f"{100 * result.mirror_disagreement:.2f}% of them")
        _print_unsure_share(model, result)
    typer.echo(f"  {'class':<12} {'precision':>9} {'recall':>7} {'F1':>7}")
    for name, p, r, f in zip(CLASS_NAMES, result.precision, result.recall, result.f1, strict=True):
        typer.echo(f"  {name:<12} {p:>9.4f} {r:>7.4f} {f:>7.4f}")
    typer.echo("  most frequent confusions (true -> predicted):")
    for true, pred, count in result.top_confusions():
        typer.echo(f"    {true} -> {pred}: {count}")
    typer.echo(f"report: {out_dir}")


def _print_unsure_share(model: Path, result) -> None:
    """How many test answers classify would flag at the model's own threshold (mirror-averaged scores
    are classify's probabilities), and how often the rest are right. A .keras model has no
    threshold of its own: the folder's, calibrated on the exported default model, stands in."""
    from fmnist_edge.runtime.classifier import own_threshold
    from fmnist_edge.runtime.manifest import manifest_beside
    from fmnist_edge.runtime.model_info import read_metadata

    try:
        threshold = own_threshold(read_metadata(model), manifest_beside(model), model.name)
    except FmnistEdgeError:
        return  # evaluation does not depend on the threshold; classify would refuse the model with its own line
    if threshold is None:
        return
    confidence = result.scores.max(1)
    flagged = confidence < threshold
    correct = result.predictions == result.labels
    rest = f"{100 * correct[~flagged].mean():.1f}%" if (~flagged).any() else "-"
    of_flagged = f"{100 * correct[flagged].mean():.1f}%" if flagged.any() else "-"
    typer.echo(f"  unsure at the model's threshold {threshold:.3f}: {100 * flagged.mean():.1f}% flagged "
               f"({of_flagged} of them right), {rest} of the rest right")
