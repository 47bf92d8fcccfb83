"""The commands of the export stage: `export` (convert, check parity, publish) and `evaluate`.

TensorFlow and tf2onnx are imported inside the commands, only when a .keras model is read.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.exits import EXIT_FAILED, EXIT_INTERRUPTED
from fmnist_edge.export.options import EXPORT_OUT, ExportOptions
from fmnist_edge.options import DataDir, Threads, Verbose, fail, progress, require
from fmnist_edge.quiet import quiet_unless_verbose
from fmnist_edge.runtime.errors import FmnistEdgeError, ModelError, UsageError
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.train.config import PHOTOS_DIR, TRAIN_OUT

TRAINED_MODEL = TRAIN_OUT / by_name("keras").filename
REPORTS = Path("report")  # evaluate's and evaluate-photos' reports, under the current folder; git ignores it


_EXPORT = ExportOptions()  # the defaults below are read from here, never typed twice


@quiet_unless_verbose
def export_cmd(
    model: Annotated[
        Path | None,
        typer.Argument(help="Trained Keras model; its training record is read from beside it.",
                       show_default=f"{TRAINED_MODEL} if `train` wrote one, else the bundled model"),
    ] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Also write full-integer int8 TFLite and ONNX.")] = False,
    formats: Annotated[str, typer.Option(help="Comma-separated: tflite, onnx.")] = ",".join(_EXPORT.kinds),
    out: Annotated[Path, typer.Option(help="Output folder (the shipped models' folder, artifacts/, only when "
                                           "named here).")] = EXPORT_OUT,
    calibration: Annotated[
        int, typer.Option(min=10, max=60_000, help="Training images used to calibrate int8 (10 to 60000).")
    ] = _EXPORT.calibration_size,
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1, help="Seed for picking calibration images.")
                    ] = _EXPORT.seed,
    photos: Annotated[
        Path | None,
        typer.Option(help="Labelled photos with a `val` split: the unsure threshold is raised until the answers "
                          "not flagged are >= 90% right on them.", file_okay=False, exists=True,
                     show_default=f"{PHOTOS_DIR} if fetch-photos put them there"),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace existing exported models.")] = False,
    verify: Annotated[
        Path | None,
        typer.Option("--verify", metavar="DIR", file_okay=False,
                     help="Instead of exporting: re-export DIR's Keras model as DIR's manifest records, in a "
                          "temporary folder, and say per file whether DIR holds the same bytes (identical), "
                          "models within parity of them (equivalent, with the evidence) or not (different). "
                          "DIR is never written."),
    ] = None,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Export to float TFLite and ONNX (and int8 with --int8); refuse any model that fails parity.

    Without MODEL it exports the model `train` wrote into runs/train, or, before any training, the
    bundled model (and says which). Each model is checked on the 10k test images against the
    Keras model before anything is written: float formats must agree on every top-1 within 1e-3,
    int8 models must stay within 0.3 pp of the Keras accuracy and agree on >= 99% of top-1
    predictions. Writes manifest.json beside the models, with sizes, SHA-256 and the measured
    figures. The same Keras model, package versions and CPU give byte-identical files; only the
    manifest's provenance (created, which follows $SOURCE_DATE_EPOCH, commit, versions, CPU) varies.

    Safe to interrupt or to run twice: the arguments, --out's free space and a lock on --out are
    checked before any work (a second export into the same folder is refused), the work is staged
    in a hidden folder inside --out that is removed on exit (and by the next export, after a
    kill), and the manifest is published last, so the folder always holds one complete export.

    Exit codes: 0 exported (with --verify: every file identical or equivalent); 1 a model failed
    parity (nothing was written), the Fashion-MNIST files are missing, or with --verify a file is
    different; 2 usage error (bad option, missing or unreadable model or training record, existing
    files without --force, --out unwritable, full or locked, TensorFlow or tf2onnx not installed;
    with --verify: no manifest, a file changed since export, a manifest of another version);
    130 interrupted (Ctrl-C or SIGTERM; --out keeps its previous export).
    """
    from fmnist_edge.interrupt import StopOnSignals

    try:
        kinds = tuple(k.strip() for k in formats.split(",") if k.strip())
        if not kinds:
            raise UsageError(f"--formats {formats!r} names no format; choose from tflite, onnx (comma-separated)")
        require("tensorflow", "tensorflow", "train")
        require("tf2onnx", "tf2onnx", "train")
        if verify is not None:
            with StopOnSignals(raise_at_once=True):
                _verify(verify, photos, data_dir)
            return
        from fmnist_edge.export.pipeline import export

        model = model or _default_model()
        photos = photos or _default_photos()
        options = replace(_EXPORT, kinds=kinds, int8=int8, calibration_size=calibration, seed=seed, force=force,
                          photos=photos)
        with StopOnSignals(raise_at_once=True):  # SIGTERM unwinds like Ctrl-C, so staging is removed
            export(model, out, options, data_dir=data_dir, log=typer.echo)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo("interrupted" + ("" if verify else f"; {out} keeps its previous export"), err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _default_model() -> Path:
    """runs/train's model when `train` wrote one; else the bundled Keras model, said in one line."""
    if TRAINED_MODEL.is_file():
        return TRAINED_MODEL
    from fmnist_edge.runtime.manifest import bundled_dir

    bundled = bundled_dir() / TRAINED_MODEL.name
    if not bundled.is_file():
        raise ModelError(f"no trained model in {TRAINED_MODEL} and no bundled Keras model in {bundled.parent}; "
                         "run `fmnist-edge train` or name a model")
    progress(f"no trained model in {TRAINED_MODEL}: exporting the bundled model {bundled}")
    return bundled


def _default_photos() -> Path | None:
    """The photos fetch-photos put in PHOTOS_DIR, if any (export's calibration step says when there are none)."""
    return PHOTOS_DIR if (PHOTOS_DIR / "labels.csv").is_file() else None


def _verify(folder: Path, photos: Path | None, data_dir: Path | None) -> None:
    from fmnist_edge.export.verify import verify

    result = verify(folder, photos=photos, data_dir=data_dir, log=progress)
    for item in result.files:
        typer.echo(f"{item.verdict:<10}  {item.file}")
        for line in item.evidence:
            typer.echo(f"            {line}")
    for line in result.differences:
        typer.echo(f"differs: {line}")
    typer.echo(f"{folder}: {'verified' if result.ok else 'NOT verified'}: "
               f"{sum(f.verdict == 'identical' for f in result.files)} identical, "
               f"{sum(f.verdict == 'equivalent' for f in result.files)} equivalent, "
               f"{sum(f.verdict == 'different' for f in result.files)} different")
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


@quiet_unless_verbose
def evaluate(
    model: Annotated[Path, typer.Argument(help="A .keras, .tflite or .onnx model.")],
    out: Annotated[
        Path | None, typer.Option(help="Report folder.", show_default="report/<model name>")
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

        out_dir = out or REPORTS / (model.stem + ("-mirror-average" if mirror_average else ""))
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
