"""The `fmnist-edge` command line: thin commands over the library, errors mapped to exit codes here.

Heavy packages (TensorFlow, tf2onnx, onnx) are imported inside the commands that use them, so
`classify` on a device starts fast and never loads TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fmnist_edge.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, classify_exit_code
from fmnist_edge.runtime.errors import FmnistEdgeError, MissingExtraError
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

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Folder with the four Fashion-MNIST .gz files.",
                 show_default="$FMNIST_EDGE_DATA, the user cache, /usr/share/datasets/fashion-mnist, download"),
]


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def require(module: str, package: str, extra: str) -> None:
    """Fail with the pip command to run when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(package, extra)


@app.command()
def data(data_dir: DataDir = None) -> None:
    """Find Fashion-MNIST, verify the four files' checksums and print the class counts."""
    import numpy as np

    from fmnist_edge.runtime.spec import CLASS_NAMES
    from fmnist_edge.train import data as fmnist_data

    try:
        ds = fmnist_data.load(data_dir)
    except FmnistEdgeError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"found: {ds.source}")
    for name, digest in ds.sha256.items():
        typer.echo(f"  sha256 ok  {name}  {digest[:16]}…")
    typer.echo(f"train: {ds.train_images.shape}  test: {ds.test_images.shape}")
    train_counts = np.bincount(ds.train_labels, minlength=10)
    test_counts = np.bincount(ds.test_labels, minlength=10)
    typer.echo(f"  {'class':<12} {'train':>6} {'test':>6}")
    for i, name in enumerate(CLASS_NAMES):
        typer.echo(f"  {name:<12} {train_counts[i]:>6} {test_counts[i]:>6}")


@app.command()
def train(
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training split.")] = 40,
    seed: Annotated[int, typer.Option(help="Seeds the split, the initial weights and augmentation.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for fmnist_cnn.keras and its training record.")] = TRAIN_OUT,
    subset: Annotated[
        int | None,
        typer.Option(min=10, help="Train on only N images (smoke runs); validation shrinks to N/5."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    force: Annotated[bool, typer.Option(help="Replace an existing model in --out.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Train the compact CNN (best epoch chosen on a validation split; the test set is never used)."""
    try:
        require("tensorflow", "tensorflow", "train")
        from fmnist_edge.train.train import TrainConfig
        from fmnist_edge.train.train import train as run_training

        cfg = TrainConfig(epochs=epochs, seed=seed, subset=subset, batch_size=batch_size)
        record = run_training(cfg, out, data_dir=data_dir, force=force)
    except FmnistEdgeError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted; the best checkpoint so far (if any) is in {out}", err=True)
        raise typer.Exit(130) from None
    typer.echo(
        f"best val accuracy {record['best_val_accuracy']:.4f} at epoch {record['best_epoch']}; "
        f"{record['params']} params, {record['macs_per_image'] / 1e6:.1f} M MACs/image; "
        f"{record['wall_seconds'] / 60:.1f} min, peak RSS {record['peak_rss_mb']:.0f} MB -> {out}"
    )


@app.command("export")
def export_cmd(
    model: Annotated[
        Path, typer.Argument(help="Trained Keras model; its training record is read from beside it.")
    ] = TRAINED_MODEL,
    int8: Annotated[bool, typer.Option("--int8", help="Also write full-integer int8 TFLite and ONNX.")] = False,
    formats: Annotated[str, typer.Option(help="Comma-separated: tflite, onnx.")] = "tflite,onnx",
    out: Annotated[Path | None, typer.Option(help="Output folder.", show_default="the model's folder")] = None,
    calibration: Annotated[int, typer.Option(min=10, help="Training images used to calibrate int8.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed for picking calibration images.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace existing exported models.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Export to float TFLite and ONNX (and int8 with --int8); refuse any model that fails parity.

    Each model is checked on the 10k test images against the Keras model before anything is
    written: float formats must agree on every top-1 within 1e-3, int8 models must stay within
    0.3 pp of the Keras accuracy and agree on >= 99% of top-1 predictions. Writes manifest.json
    beside the models, with sizes, SHA-256 and the measured figures. The shipped models were made
    with `fmnist-edge export artifacts/fmnist_cnn.keras --int8 --force --out artifacts`.
    """
    try:
        require("tensorflow", "tensorflow", "train")
        require("tf2onnx", "tf2onnx", "train")
        from fmnist_edge.export.pipeline import ExportOptions, export

        kinds = tuple(k.strip() for k in formats.split(",") if k.strip())
        options = ExportOptions(kinds=kinds, int8=int8, calibration_size=calibration, seed=seed, force=force)
        export(model, out or model.parent, options, data_dir=data_dir, log=typer.echo)
    except FmnistEdgeError as exc:
        raise fail(str(exc)) from None


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="A .keras, .tflite or .onnx model.")],
    out: Annotated[
        Path | None, typer.Option(help="Report folder.", show_default="<model folder>/report/<model name>")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Interpreter threads.", show_default="all cores")] = None,
    plots: Annotated[bool, typer.Option(help="Write the PNG report images.")] = True,
    mirror_average: Annotated[
        bool,
        typer.Option("--mirror-average", help="Score classify's answers (each image averaged with its mirror "
                     "image) instead of the model alone; the report folder name gets -mirror-average."),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Accuracy, per-class precision/recall/F1 and confusions on the full 10k test set, plus report files."""
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
        raise fail(str(exc)) from None
    how = ", averaged with mirror images as classify does" if mirror_average else ""
    typer.echo(f"{model}: test accuracy {100 * result.accuracy:.2f}% on {int(result.confusion.sum())} images{how}")
    if result.mirror_disagreement is not None:
        typer.echo(f"  without averaging, mirroring an image changes the model's answer for "
                   f"{100 * result.mirror_disagreement:.2f}% of them")
    typer.echo(f"  {'class':<12} {'precision':>9} {'recall':>7} {'F1':>7}")
    for name, p, r, f in zip(CLASS_NAMES, result.precision, result.recall, result.f1, strict=True):
        typer.echo(f"  {name:<12} {p:>9.4f} {r:>7.4f} {f:>7.4f}")
    typer.echo("  most frequent confusions (true -> predicted):")
    for true, pred, count in result.top_confusions():
        typer.echo(f"    {true} -> {pred}: {count}")
    typer.echo(f"report: {out_dir}")


CLASSIFY_HELP = """Classify photos or dataset images: files, folders (their images) and globs.

Runs the bundled int8 TFLite model unless --model says otherwise. Photos are trimmed to the
item, resized and inverted as Fashion-MNIST was made; 28x28 light-on-dark images pass unchanged.
Each answer averages the image's and its mirror image's probabilities, so a shoe pointing left
gets the same answer as one pointing right. Results below the manifest's confidence threshold
are flagged "unsure".

Exit codes: 0 every input classified; 1 some inputs failed (each has one line on stderr, and with
--json also a {"path", "error"} object on stdout); 2 usage error (bad option, missing or corrupt model).
"""


@app.command(help=CLASSIFY_HELP)
def classify(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)],
    model: Annotated[
        Path | None, typer.Option(help="A .tflite or .onnx model.", show_default="bundled int8 TFLite")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="auto, litert, tflite-runtime, onnxruntime (runs the bundled int8 ONNX) or numpy "
                          "(runs the bundled float TFLite; auto's fallback when no interpreter imports).")
    ] = "auto",
    threads: Annotated[
        int | None, typer.Option(min=1, help="Interpreter threads.", show_default="all cores")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=10, help="Show the k most likely classes.")] = 1,
    json_lines: Annotated[bool, typer.Option("--json", help="Print one JSON object per input (JSON Lines).")] = False,
    save_input: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Write the exact 28x28 image the model saw, as PNG, into this folder."),
    ] = None,
) -> None:
    raise typer.Exit(classify_exit_code(paths, model=model, backend=backend, threads=threads, top_k=top_k,
                                        json_lines=json_lines, save_input=save_input))


@app.command("evaluate-photos")
def evaluate_photos(
    folder: Annotated[Path, typer.Argument(help="Folder of photos.", exists=True, file_okay=False)],
    labels: Annotated[
        Path | None, typer.Option(help="CSV with file,label columns.", show_default="FOLDER/labels.csv")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="A .tflite or .onnx model.", show_default="bundled int8 TFLite")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Interpreter threads.", show_default="all cores")] = None,
) -> None:
    """Top-1 accuracy on labelled real photos (e.g. ../shared/photos), with every miss listed.

    Exit codes: 0 every photo was read; 1 some could not be (one line each on stderr; the figure
    covers the rest); 2 a bad labels file or model.
    """
    from fmnist_edge.runtime.classifier import Classifier
    from fmnist_edge.runtime.photo_eval import evaluate_photos as run
    from fmnist_edge.runtime.spec import CLASS_NAMES

    try:
        classifier = Classifier(model, threads=threads)
        results, errors = run(folder, labels or folder / "labels.csv", classifier)
    except FmnistEdgeError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    for r in results:
        mark = "ok  " if r.correct else "MISS"
        typer.echo(f"{mark} {r.file:<28} true {CLASS_NAMES[r.true]:<12} predicted {CLASS_NAMES[r.predicted]:<12} "
                   f"{100 * r.confidence:5.1f}%")
    for message in errors:
        typer.echo(f"error: {message}", err=True)
    if results:
        hits = sum(r.correct for r in results)
        typer.echo("per class: " + ", ".join(
            f"{name} {sum(r.correct for r in results if r.true == i)}/{sum(r.true == i for r in results)}"
            for i, name in enumerate(CLASS_NAMES) if any(r.true == i for r in results)
        ))
        unread = f"; {len(errors)} could not be read" if errors else ""
        typer.echo(f"top-1 on {len(results)} photos: {hits}/{len(results)} = {100 * hits / len(results):.1f}% "
                   f"({classifier.path.name}){unread}")
    raise typer.Exit(EXIT_FAILED if errors else EXIT_OK)


BENCH_HELP = """Latency, throughput, load time and memory of each model on each installed interpreter.

Runs every model in the bundled manifest (or the PATHS given) on every installed backend that
can run it: .tflite on LiteRT (and tflite-runtime, if it imports), the float .tflite also on the
pure-numpy backend, .onnx on onnxruntime; with 1
thread and with all cores; at batch 1, 32 and 256. Each row is timed after a warm-up, over up to
1000 calls or --budget seconds, whichever comes first; p50/p90/p99 are per call, and images/s is
batch / p50. Peak RSS is the bench process's peak (VmHWM) when the row was measured, so it only
grows down the table. The default run takes about half a minute on a 2-core x86 machine.

--accuracy adds accuracy on the full 10k test set (needs the Fashion-MNIST files).
When TensorFlow is installed and the float Keras model sits beside the bundled models (a source
checkout), it is added as a baseline row so the speed-up is visible; --no-keras leaves it out,
--keras insists on it. A .keras file among PATHS is always benchmarked.
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
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table (for the README).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document: machine, results.")] = False,
    data_dir: DataDir = None,
) -> None:
    import json

    from fmnist_edge.runtime import bench as benchmark
    from fmnist_edge.runtime import bench_report

    if markdown and json_out:
        raise fail("choose one of --markdown and --json", EXIT_USAGE)
    try:
        model_paths = [p for p in paths or [] if p.suffix != ".keras"]
        keras_paths = [p for p in paths or [] if p.suffix == ".keras"]
        targets, notes = benchmark.targets(model_paths) if model_paths or not paths else ([], [])
        if keras or (keras is None and not paths):
            from fmnist_edge.runtime.formats import by_name
            from fmnist_edge.runtime.manifest import bundled_dir

            baseline = bundled_dir() / by_name("keras").filename
            if keras or (baseline.is_file() and _tensorflow_installed()):
                keras_paths.append(baseline)
        targets += _keras_targets(keras_paths)
        if not targets:
            raise fail("nothing to benchmark: " + ("; ".join(notes) or "no models"))
        data = None
        if accuracy:
            from fmnist_edge.train import data as fmnist_data

            ds = fmnist_data.load(data_dir)
            data = (ds.test_images, ds.test_labels)
        for note in notes:
            typer.echo(note, err=True)
        doc = benchmark.run_bench(targets, benchmark.Settings(budget=budget), data, log=_progress)
    except FmnistEdgeError as exc:
        raise fail(str(exc)) from None
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

Runs the ~100 golden test images shipped with the package (golden.npz) through the installed
interpreter and compares with the scores recorded at export: for the bundled model every top-1
must match and no score may move by more than 1e-4. Also checks that each golden image, as a
PNG, passes through preprocessing unchanged. With --model another file is run and its agreement
is reported; it is only judged when it is the very file the golden scores came from.

Exit codes: 0 ok; 1 a check failed (or the model cannot run); 2 no golden data installed.
"""


@app.command(help=SELFTEST_HELP)
def selftest(
    model: Annotated[
        Path | None,
        typer.Option(help="A .tflite or .onnx model.", exists=True, dir_okay=False, show_default="bundled int8 TFLite"),
    ] = None,
    golden: Annotated[
        Path | None, typer.Option(help="Golden data file.", show_default="bundled golden.npz")
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, litert, tflite-runtime, onnxruntime or numpy.")] = "auto",
    threads: Annotated[int | None, typer.Option(min=1, help="Interpreter threads.", show_default="all cores")] = None,
) -> None:
    from fmnist_edge.runtime.errors import MissingGoldenError
    from fmnist_edge.runtime.selftest import run_selftest

    try:
        result = run_selftest(model, golden, backend=backend, threads=threads)
    except MissingGoldenError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except FmnistEdgeError as exc:
        raise fail(f"selftest failed: {exc}") from None
    if not result.ok:
        typer.echo(result.summary(), err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(result.summary())


@app.command()
def doctor() -> None:
    """Platform, versions, interpreters (and why one does not import), memory, the bundled models.

    Warns about combinations known not to work (tflite-runtime with numpy 2, Python 3.12+ without
    ai-edge-litert, 32-bit ARM). Exit 0 when an installed interpreter runs a verified bundled
    model, 1 otherwise.
    """
    from fmnist_edge.runtime.doctor import run_doctor

    report = run_doctor()
    for line in report.lines():
        typer.echo(line)
    raise typer.Exit(EXIT_OK if report.ready else EXIT_FAILED)
