"""The `fmnist-edge` command line: thin commands over the library; errors become one line and the
exit code that cli/exits.py's table gives their class.

Heavy packages (TensorFlow, tf2onnx, onnx) are imported inside the commands that use them, so
`classify` on a device starts fast and never loads TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, exit_code
from fmnist_edge.quiet import quiet_unless_verbose
from fmnist_edge.runtime import registry
from fmnist_edge.runtime.errors import FmnistEdgeError, MissingExtraError, UsageError
from fmnist_edge.runtime.formats import by_name

app = typer.Typer(
    name="fmnist-edge",
    help="Train, quantize and ship a compact Fashion-MNIST classifier to small CPU devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # reflow docstring paragraphs to the terminal width
)

TRAIN_OUT = Path("runs/train")  # where `train` writes by default, so `export` finds it there by default
TRAINED_MODEL = TRAIN_OUT / by_name("keras").filename

Verbose = Annotated[
    bool, typer.Option("--verbose", help="Show TensorFlow's own start-up and log lines (hidden by default).")
]

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder with the four Fashion-MNIST .gz files.",
                 show_default="$FMNIST_EDGE_DATA, the user cache, /usr/share/datasets/fashion-mnist, download"),
]

Threads = Annotated[
    int | None,
    typer.Option(min=1, max=registry.MAX_THREADS, help=f"Interpreter threads, 1 to {registry.MAX_THREADS}.",
                 show_default="all cores"),
]

BACKEND_HELP = (f"{registry.choices()}: auto takes the first installed in that order, with the bundled model it "
                "runs (onnxruntime the int8 ONNX, numpy the float TFLite).")


def _version(show: bool) -> None:
    if show:
        from fmnist_edge import __version__

        typer.echo(f"fmnist-edge {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train, quantize and ship a compact Fashion-MNIST classifier to small CPU devices."""


def fail(error: FmnistEdgeError, prefix: str = "error: ") -> typer.Exit:
    """Print `error` as one line on stderr; the exit to raise carries its code from the one table."""
    typer.echo(f"{prefix}{error}", err=True)
    return typer.Exit(exit_code(error))


def require(module: str, package: str, extra: str) -> None:
    """Fail with the pip command to run when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(package, extra)


@app.command()
def data(data_dir: DataDir = None) -> None:
    """Find Fashion-MNIST, verify the four files' checksums and print the class counts.

    Exit codes: 0 found and verified; 1 a file is missing, corrupt or cannot be downloaded.
    """
    import numpy as np

    from fmnist_edge.runtime.spec import CLASS_NAMES
    from fmnist_edge.train import data as fmnist_data

    try:
        ds = fmnist_data.load(data_dir)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    typer.echo(f"found: {ds.source}")
    for name, digest in ds.sha256.items():
        typer.echo(f"  sha256 ok  {name}  {digest[:16]}…")
    typer.echo(f"train: {ds.train_images.shape}  test: {ds.test_images.shape}")
    train_counts = np.bincount(ds.train_labels, minlength=10)
    test_counts = np.bincount(ds.test_labels, minlength=10)
    typer.echo(f"  {'class':<12} {'train':>6} {'test':>6}")
    for i, name in enumerate(CLASS_NAMES):
        typer.echo(f"  {name:<12} {train_counts[i]:>6} {test_counts[i]:>6}")


@app.command("fetch-photos")
def fetch_photos_cmd(
    out: Annotated[
        Path, typer.Option(file_okay=False, help="Folder for the photos and their labels.csv.")
    ] = Path("data/photos-train"),
) -> None:
    """Download the 700 labelled training photos (549 train, 151 val) for `train --photos`.

    The photos come from github.com/alexeygrigorev/clothing-dataset, licensed CC0 1.0 (free for any
    use), at the pinned commit 7ed86a9cc56763b6acb35e41cb35184e43a5d218. Each original is checked
    against the SHA-256 in the labels file shipped with fmnist-edge, then made as the project's own
    copy was (EXIF orientation, RGB, at most 512 px, JPEG). A rerun fetches only what is missing.
    Pass the resulting folder to `fmnist-edge train --photos` or `evaluate-photos`.
    $FMNIST_EDGE_PHOTOS_MIRROR replaces the GitHub address with a mirror holding the same paths.
    """
    from fmnist_edge.train.photo_data import fetch_photos

    try:
        folder = fetch_photos(out, log=_progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; run the command again to resume into {out}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo(f"photos ready: fmnist-edge train --photos {folder}")


@app.command()
@quiet_unless_verbose
def train(
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training split.")] = 40,
    seed: Annotated[int, typer.Option(help="Seeds the split, the initial weights and augmentation.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for fmnist_cnn.keras and its training record.")] = TRAIN_OUT,
    photos: Annotated[
        Path | None,
        typer.Option(help="Folder of labelled photos (labels.csv with a split column): the `train` photos are "
                          "mixed into every batch, the `val` photos score each epoch.", file_okay=False),
    ] = None,
    photo_fraction: Annotated[float, typer.Option(min=0.01, max=0.9, help="Share of each batch that is photos.")] = 0.2,
    init: Annotated[
        Path | None, typer.Option(help="Start from this trained .keras model (fine-tuning) instead of random weights.")
    ] = None,
    lr: Annotated[float, typer.Option(min=1e-6, max=1.0, help="Peak learning rate (SGD, cosine schedule).")] = 0.1,
    freeze_bn: Annotated[
        bool, typer.Option(help="With --init: keep the starting model's BatchNorm statistics (protects "
                                "dataset accuracy while photos are mixed in).")
    ] = True,
    distill: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="With --init: the Fashion-MNIST images' targets mix the label "
                            "with the starting model's own probabilities, by this weight, so fine-tuning learns "
                            "the photos without forgetting the dataset.")
    ] = 0.5,
    subset: Annotated[
        int | None,
        typer.Option(min=10, help="Train on only N images (smoke runs); validation shrinks to N/5."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=2)] = 128,
    force: Annotated[bool, typer.Option(help="Replace an existing model in --out.")] = False,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Train the compact CNN (best epoch chosen on validation data; the test set is never used).

    The shipped model: `fmnist-edge train --out artifacts` (the dataset-only base, 40 epochs), then
    `fmnist-edge train --init artifacts/fmnist_cnn.keras --photos PHOTOS --epochs 4 --lr 0.05 --out runs/photo`
    (see the README). With --photos, a bad labels file or a missing photo stops before training starts;
    an unreadable photo is skipped and counted in the training record.

    Exit codes: 0 trained; 1 the Fashion-MNIST files are missing or corrupt; 2 usage error (bad
    option, a bad --photos folder, a model in --out without --force, TensorFlow not installed); 130 interrupted.
    """
    try:
        require("tensorflow", "tensorflow", "train")
        from fmnist_edge.train.train import TrainConfig
        from fmnist_edge.train.train import train as run_training

        cfg = TrainConfig(epochs=epochs, seed=seed, subset=subset, batch_size=batch_size, peak_lr=lr,
                          photo_fraction=photo_fraction, warmup_epochs=0.0 if init else 1.0,
                          freeze_batchnorm=freeze_bn and init is not None,
                          distill=distill if init is not None else 0.0)
        record = run_training(cfg, out, data_dir=data_dir, force=force, photos=photos, init=init, log=_progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; the best checkpoint so far (if any) is in {out}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    photo = (f", photo val {record['best_photo_val_accuracy']:.4f}"
             if record.get("best_photo_val_accuracy") is not None else "")
    typer.echo(
        f"best val accuracy {record['best_val_accuracy']:.4f}{photo} at epoch {record['best_epoch']}; "
        f"{record['params']} params, {record['macs_per_image'] / 1e6:.1f} M MACs/image; "
        f"{record['wall_seconds'] / 60:.1f} min, peak RSS {record['peak_rss_mb']:.0f} MB -> {out}"
    )


@app.command()
@quiet_unless_verbose
def blend(
    start: Annotated[Path, typer.Argument(help="The model fine-tuning started from (train --init).")],
    tuned: Annotated[Path, typer.Argument(help="The fine-tuned model; its training record is read from beside it.")],
    photos: Annotated[Path, typer.Option(help="Labelled photos with a `val` split (as given to train --photos).",
                                         file_okay=False, exists=True)],
    out: Annotated[Path, typer.Option(help="Folder for the blended fmnist_cnn.keras and its record.")],
    max_drop: Annotated[float, typer.Option(min=0.0, max=0.05, help="How much dataset validation accuracy (a "
                                            "fraction) the blend may lose against START.")] = 0.002,
    force: Annotated[bool, typer.Option(help="Replace an existing model in --out.")] = False,
    data_dir: DataDir = None,
    verbose: Verbose = False,
) -> None:
    """Average a fine-tuned model's weights with its starting model's (WiSE-FT), picking the mix on validation data.

    Tries (1 - a) * START + a * TUNED for a = 0, 0.1, ..., 1 and keeps the one with the best photo
    validation accuracy among those whose dataset validation accuracy is within --max-drop of
    START's. The test set is not used. The record beside the result says which a was chosen, and why.

    Exit codes: 0 written; 1 the Fashion-MNIST files are missing or corrupt; 2 usage error (missing or
    mismatched models, a bad --photos folder, a model in --out without --force, TensorFlow not installed).
    """
    try:
        require("tensorflow", "tensorflow", "train")
        from fmnist_edge.train.blend import blend as run_blend

        record = run_blend(start, tuned, photos, out, max_drop=max_drop, data_dir=data_dir, force=force,
                           log=_progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    chosen = record["blend"]
    typer.echo(f"a = {chosen['alpha']:.1f}: val {chosen['val_accuracy']:.4f}, photo val "
               f"{chosen['photo_val_accuracy']:.4f} -> {out}")


@app.command("export")
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


@app.command()
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


CLASSIFY_HELP = """Classify photos or dataset images: files, folders (their images) and globs.

Runs the bundled int8 TFLite model on LiteRT unless --model or --backend says otherwise. Without
--backend the first interpreter that imports is used, in the order LiteRT, tflite-runtime,
onnxruntime (the int8 ONNX), numpy (the float TFLite, run in pure numpy): so an install where
no interpreter's wheel exists still classifies. `fmnist-edge doctor` says which one this is.
Photos are trimmed to the
item, resized and inverted as Fashion-MNIST was made; 28x28 light-on-dark images pass unchanged.
Each answer averages the image's and its mirror image's probabilities, so a shoe pointing left
gets the same answer as one pointing right. Results below the manifest's confidence threshold
are flagged "unsure".

Each input gets one line as soon as its batch is done (at most 64 images or 50 ms): its answer,
or an error line on stderr, whatever went wrong with it (corrupt, truncated or hostile file,
decoder or memory error), and the rest go on. A model with no manifest beside it runs only when
named by --model, with a warning that it is unverified, and nothing is flagged unsure. Ctrl-C or
SIGTERM stops after the lines in progress; a second one stops at once. A closed stdout (`| head
-3`) ends the run quietly.

Exit codes: 0 every input classified; 1 some inputs failed (each has one line on stderr, and with
--json also a {"path", "error"} object on stdout); 2 usage error (bad option, missing, corrupt or
unverifiable model or manifest, interpreter not installed); 130 stopped early (SIGINT, SIGTERM, or
stdout closed): the lines printed are complete.
"""


@app.command(help=CLASSIFY_HELP)
def classify(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)],
    model: Annotated[
        Path | None, typer.Option(help="A .tflite or .onnx model.", show_default="the bundled model the backend runs")
    ] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    threads: Threads = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=10, help="Show the k most likely classes.")] = 1,
    json_lines: Annotated[bool, typer.Option("--json", help="Print one JSON object per input (JSON Lines).")] = False,
    save_input: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Write the exact 28x28 image the model saw, as PNG, into this folder "
                     "(never over an existing file: NAME-2.png and so on; a folder holding inputs is refused)."),
    ] = None,
) -> None:
    from fmnist_edge.classify import classify_exit_code

    raise typer.Exit(classify_exit_code(paths, model=model, backend=backend, threads=threads, top_k=top_k,
                                        json_lines=json_lines, save_input=save_input))


@app.command("evaluate-photos")
def evaluate_photos(
    folder: Annotated[Path, typer.Argument(help="Folder of photos.", exists=True, file_okay=False)],
    labels: Annotated[
        Path | None, typer.Option(help="CSV with file and label (or class_name) columns.",
                                  show_default="FOLDER/labels.csv")
    ] = None,
    split: Annotated[
        str | None, typer.Option(help="Only the rows whose `split` column is this (e.g. val).",
                                 show_default="every row")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="A .tflite or .onnx model.", show_default="bundled int8 TFLite")
    ] = None,
    threads: Threads = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for confusion.png and contact_sheet.png.",
                                  show_default="report/photos-<folder>[-<split>]")
    ] = None,
    plots: Annotated[bool, typer.Option(help="Write the two PNGs.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of text.")] = False,
) -> None:
    """Top-1 accuracy on labelled real photos (e.g. ../shared/photos), as `classify` answers them.

    Prints every photo, per-class recall, and the accuracy and coverage of the answers not flagged
    unsure. Writes a confusion matrix and a contact sheet (each photo beside its 28x28 model input,
    misses first) as PNGs.

    Exit codes: 0 every photo was read; 1 some could not be (one line each on stderr; the figures
    cover the rest); 2 a bad labels file or model.
    """
    import json

    from fmnist_edge.photo_report import confusion_png, contact_sheet_png, save_png
    from fmnist_edge.runtime.classifier import Classifier
    from fmnist_edge.runtime.photo_eval import evaluate_photos as run
    from fmnist_edge.runtime.spec import CLASS_NAMES

    try:
        classifier = Classifier(model, threads=threads)
        if not classifier.verified:
            from fmnist_edge.classify import unverified_warning

            typer.echo(unverified_warning(classifier.path), err=True)
        summary = run(folder, labels or folder / "labels.csv", classifier, split=split)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    for message in summary.unreadable:
        typer.echo(f"error: {message}", err=True)
    report = out or Path("report") / ("photos-" + folder.resolve().name + (f"-{split}" if split else ""))
    if plots:
        title = f"{folder.name}{f' ({split})' if split else ''}: {100 * summary.accuracy:.1f}% ({classifier.path.name})"
        save_png(confusion_png(summary, title), report / "confusion.png")
        save_png(contact_sheet_png(summary, folder), report / "contact_sheet.png")
    if json_out:
        document = summary.to_json(classifier.path.name, split)
        document["report"] = str(report) if plots else None
        typer.echo(json.dumps(document, indent=2))
        raise typer.Exit(EXIT_FAILED if summary.unreadable else EXIT_OK)
    for r in summary.results:
        mark = "ok  " if r.correct else "MISS"
        typer.echo(f"{mark} {r.file:<28} true {CLASS_NAMES[r.true]:<12} predicted {CLASS_NAMES[r.predicted]:<12} "
                   f"{100 * r.confidence:5.1f}%{'  unsure' if r.unsure else ''}")
    typer.echo("per class (recall):")
    for name, row in summary.per_class().items():
        typer.echo(f"  {name:<12} {row['correct']:>3}/{row['photos']:<3} {100 * row['recall']:5.1f}%")
    sure = summary.sure()
    hits = sum(r.correct for r in summary.results)
    unread = f"; {len(summary.unreadable)} could not be read" if summary.unreadable else ""
    typer.echo(f"top-1 on {len(summary.results)} photos: {hits}/{len(summary.results)} = "
               f"{100 * summary.accuracy:.1f}% ({classifier.path.name}){unread}")
    right = "-" if sure["accuracy"] is None else f"{100 * sure['accuracy']:.1f}%"
    if summary.unsure_threshold is None:
        typer.echo("no calibrated unsure threshold for this model (no manifest value): nothing is flagged unsure")
    else:
        typer.echo(f"not flagged unsure (confidence >= {summary.unsure_threshold:.3f}): {sure['answers']} photos "
                   f"({100 * sure['coverage']:.1f}%), {right} right; {sure['flagged_unsure']} flagged unsure")
    if plots:
        typer.echo(f"report: {report}")
    raise typer.Exit(EXIT_FAILED if summary.unreadable else EXIT_OK)


BENCH_HELP = """Latency, throughput, load time and memory of each model on each installed interpreter.

Runs every model in the bundled manifest (or the PATHS given) on every installed backend that
can run it (runtime/registry.py): .tflite on LiteRT (and tflite-runtime, if it imports), the
float .tflite also on the pure-numpy backend, .onnx on onnxruntime; --backend NAME keeps one
backend (and fails in one line, naming the install command, when it is not installed); with 1
thread and with all cores; at batch 1, 32 and 256. Each row is timed after a warm-up, over up to
1000 calls or --budget seconds, whichever comes first; p50/p90/p99 are per call, and images/s is
batch / p50. Peak RSS is the bench process's peak (VmHWM) when the row was measured, so it only
grows down the table. The default run takes about half a minute on a 2-core x86 machine.

--accuracy adds accuracy on the full 10k test set (needs the Fashion-MNIST files).
When TensorFlow is installed and the float Keras model sits beside the bundled models (a source
checkout), it is added as a baseline row so the speed-up is visible; --no-keras leaves it out,
--keras insists on it. A .keras file among PATHS is always benchmarked.

Exit codes: 0 measured; 1 the Fashion-MNIST files (for --accuracy) are missing; 2 usage error (bad
option, missing or unusable model, no interpreter that can run it).
"""


@app.command(help=BENCH_HELP)
def bench(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Model files (.tflite, .onnx; .keras needs TensorFlow).", exists=True,
                       dir_okay=False, show_default="every model in the bundled manifest"),
    ] = None,
    budget: Annotated[float, typer.Option(min=0.01, help="Seconds per measurement (row).")] = 1.0,  # = DEFAULT_BUDGET
    accuracy: Annotated[bool, typer.Option("--accuracy", help="Also measure accuracy on the 10k test set.")] = False,
    keras: Annotated[
        bool | None,
        typer.Option("--keras/--no-keras", help="Add the float Keras model as a baseline (needs TensorFlow).",
                     show_default="when TensorFlow and the .keras file are present"),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help=f"Only this backend: {', '.join(registry.NAMES)}.",
                                 show_default="every installed backend"),
    ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table (for the README).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document: machine, results.")] = False,
    data_dir: DataDir = None,
) -> None:
    import json

    from fmnist_edge import bench_report
    from fmnist_edge.runtime import bench as benchmark

    if markdown and json_out:
        raise fail(UsageError("choose one of --markdown and --json"))
    try:
        model_paths = [p for p in paths or [] if p.suffix != ".keras"]
        keras_paths = [p for p in paths or [] if p.suffix == ".keras"]
        targets, notes = benchmark.targets(model_paths, backend) if model_paths or not paths else ([], [])
        if keras or (keras is None and not paths and backend is None):
            from fmnist_edge.runtime.formats import by_name
            from fmnist_edge.runtime.manifest import bundled_dir

            baseline = bundled_dir() / by_name("keras").filename
            if keras or (baseline.is_file() and _tensorflow_installed()):
                keras_paths.append(baseline)
        targets += _keras_targets(keras_paths)
        if not targets:
            raise FmnistEdgeError("nothing to benchmark: " + ("; ".join(notes) or "no models"))
        data = None
        if accuracy:
            from fmnist_edge.train import data as fmnist_data

            ds = fmnist_data.load(data_dir)
            data = (ds.test_images, ds.test_labels)
        for note in notes:
            typer.echo(note, err=True)
        doc = benchmark.run_bench(targets, benchmark.Settings(budget=budget), data, log=_progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    if json_out:
        typer.echo(json.dumps(doc, indent=2))
    elif markdown:
        typer.echo(bench_report.markdown(doc))
    else:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:
            console = Console(width=180)  # piped: no wrapping at a guessed 80 columns
        console.print(bench_report.rich_table(doc))


def _tensorflow_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def _progress(message: str) -> None:
    """Progress goes to stderr, so stdout stays one table or one JSON document."""
    typer.echo(message, err=True)


def _keras_targets(paths: list[Path]) -> list:
    """The float Keras model behind the bench seam (train/evaluate.py's adapter): TensorFlow only when asked."""
    if not paths:
        return []
    require("tensorflow", "tensorflow", "train")
    from fmnist_edge.runtime.bench import Target
    from fmnist_edge.runtime.errors import ModelError

    for path in paths:
        if not path.is_file():
            raise ModelError(f"Keras model not found: {path}")

    def load(path: Path):
        from fmnist_edge.train.evaluate import KerasBackend

        return KerasBackend(path)

    def import_tensorflow() -> None:
        # Untimed, and only when the Keras rows start: their load time is loading the model, as for the
        # interpreters, and rows measured before them do not carry TensorFlow's memory in their peak RSS.
        import keras  # noqa: F401

    # TensorFlow picks its own thread pool at start-up and cannot be set per model: threads "default".
    return [Target(p, "keras", "fp32", "keras", lambda _threads, p=p: load(p), (None,), import_tensorflow)
            for p in paths]


SELFTEST_HELP = """Check that this install reproduces the exported model's answers, in one line.

Runs the 100 golden test images shipped with the package (golden.npz) through the installed
interpreter and compares with the scores recorded at export. A pass proves that this interpreter,
numpy and Pillow run the bundled model as the export did: the wheel is not broken, the kernels on
this CPU compute the same model, and each golden image, as a PNG, passes through preprocessing
unchanged. It does not measure accuracy on your photos.

For the bundled model the pass is one of two levels, and the line says which. Identical: every
top-1 matches and no score moves by more than 1e-4 (the export's own XNNPACK kernels). Within one
quantization step: interpreters whose int8 kernels round differently (tflite-runtime's reference
kernels, LiteRT without XNNPACK) may move each score by one output quantization step (0.033)
and flip at most 1 in 100 near ties. The numpy backend runs the float model, so it is judged by a
looser rule: every score within the distance export measured between the int8 and float models
(their manifest `max_abs_diff`s, plus 1e-4), and the golden top-1 wherever the golden scores
leave no closer race. With --model another file is run and its agreement is reported only, unless
it is the very file the golden scores came from.

Exit codes: 0 ok; 1 a check failed, or the golden data is corrupt; 2 usage error (bad option,
missing or unusable model, no golden data installed).
"""


@app.command(help=SELFTEST_HELP)
def selftest(
    model: Annotated[
        Path | None,
        typer.Option(help="A .tflite or .onnx model.", exists=True, dir_okay=False,
                     show_default="the bundled model the backend runs"),
    ] = None,
    golden: Annotated[
        Path | None, typer.Option(help="Golden data file.", show_default="bundled golden.npz")
    ] = None,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    threads: Threads = None,
) -> None:
    from fmnist_edge.runtime.selftest import run_selftest

    try:
        result = run_selftest(model, golden, backend=backend, threads=threads)
    except FmnistEdgeError as exc:
        raise fail(exc, "selftest failed: " if exit_code(exc) == EXIT_FAILED else "error: ") from None
    if not result.verified:
        from fmnist_edge.classify import unverified_warning

        typer.echo(unverified_warning(result.model), err=True)
    if not result.ok:
        typer.echo(result.summary(), err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(result.summary())


@app.command()
def doctor() -> None:
    """Platform, versions, interpreters (and why one does not import), memory, the bundled models.

    Says which backend classify, selftest and bench use without --backend (the first that imports,
    in the order LiteRT, tflite-runtime, onnxruntime, numpy) and why each other one is not used.
    Warns about combinations known not to work (tflite-runtime with numpy 2, Python 3.12+ without
    ai-edge-litert, 32-bit ARM). Exit 0 when that choice runs its verified bundled model, 1 otherwise.
    """
    from fmnist_edge.runtime.doctor import run_doctor

    report = run_doctor()
    for line in report.lines():
        typer.echo(line)
    raise typer.Exit(EXIT_OK if report.ready else EXIT_FAILED)
