"""The commands a device runs: `classify`, `evaluate-photos`, `bench`, `selftest`, `doctor`.

None of them imports TensorFlow, except bench's optional Keras baseline row, when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from fmnist_edge.exits import EXIT_FAILED, EXIT_OK, exit_code
from fmnist_edge.options import BACKEND_HELP, DataDir, Threads, fail, progress, require
from fmnist_edge.output import safe_text
from fmnist_edge.runtime import registry
from fmnist_edge.runtime.errors import FmnistEdgeError, UsageError

CLASSIFY_HELP = """Classify photos or dataset images: files, folders (their images), globs, and `-` (stdin).

`-` (or /dev/stdin, or a named pipe) reads one photo from a pipe: `cat photo.jpg | fmnist-edge
classify -`; up to 64 MiB is read. Globs may use `**`; a link back into a folder already walked is
not followed.

Runs the bundled int8 TFLite model on LiteRT unless --model or --backend says otherwise. Without
--backend the first interpreter that imports is used, in the order LiteRT, tflite-runtime,
onnxruntime (the int8 ONNX), numpy (the float TFLite, run in pure numpy): so an install where
no interpreter's wheel exists still classifies. `fmnist-edge doctor` says which one this is.
Photos are trimmed to the item, resized and inverted as Fashion-MNIST was made; 28x28
light-on-dark images pass unchanged. Each answer averages the image's and its mirror image's
probabilities, so a shoe pointing left gets the same answer as one pointing right. Answers below
the confidence threshold the model carries (calibrated for it at export) are flagged "unsure".

Each input gets one line as soon as its batch is done (at most 64 images or 50 ms): its answer,
or an error line on stderr, whatever went wrong with it (corrupt, truncated or hostile file,
decoder or memory error), and the rest go on. A model with no manifest beside it runs only when
named by --model, with a warning that it is unverified; a model that carries no threshold flags
nothing unsure. Ctrl-C or
SIGTERM stops after the lines in progress; a second one stops at once. A closed stdout (`| head
-3`) ends the run quietly; with stderr closed, the answers are still printed.

Exit codes: 0 every input classified; 1 some inputs failed (each has one line on stderr, and with
--json also a {"path", "error"} object on stdout); 2 usage error (bad option, missing, corrupt or
unverifiable model or manifest, interpreter not installed, stdout on a full disk); 130 stopped early
(SIGINT, SIGTERM, or stdout closed): the lines printed are complete.
"""


def classify(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders, glob patterns, or - (stdin).",
                                               show_default=False)],
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
    cover the rest); 2 a bad labels file (one line naming the row), model or --out, or a full disk;
    130 stopped by Ctrl-C or SIGTERM, or stdout closed. labels.csv lists each photo once, and with
    a `split` column every row says `train` or `val`. --out must be a folder we can write in, and
    not the photo folder; it is checked before any photo is scored. The contact sheet comes in
    pages of 300 photos (contact_sheet.png, contact_sheet-2.png, ...).
    """
    from fmnist_edge.evaluate_photos import evaluate_photos_exit_code

    raise typer.Exit(evaluate_photos_exit_code(folder, labels, split, model, threads, out, plots, json_out))


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
    photos: Annotated[
        Path | None,
        typer.Option(exists=True, file_okay=False, help="Instead: where each photo's time goes in this folder "
                     "(decode, resize, segment, cut out, model), on the bundled model or the one model in PATHS."),
    ] = None,
) -> None:

    from fmnist_edge import bench_report
    from fmnist_edge.runtime import bench as benchmark

    if markdown and json_out:
        raise fail(UsageError("choose one of --markdown and --json"))
    if photos is not None:
        _photo_stages(photos, paths or [], backend, markdown, json_out)
        return
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
        doc = benchmark.run_bench(targets, benchmark.Settings(budget=budget), data, log=progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    _print_report(doc, json_out, markdown, bench_report.markdown, bench_report.rich_table)


def _photo_stages(folder: Path, paths: list[Path], backend: str | None, markdown: bool, json_out: bool) -> None:
    """bench --photos: per-stage milliseconds of every photo in `folder` (runtime/photo_stages.py)."""

    from fmnist_edge import bench_report
    from fmnist_edge.inputs import expand
    from fmnist_edge.runtime.classifier import Classifier
    from fmnist_edge.runtime.photo_stages import photo_stages

    try:
        if len(paths) > 1 or any(p.suffix == ".keras" for p in paths):
            raise UsageError("--photos times one .tflite or .onnx model: give at most one in PATHS")
        inputs = expand([str(folder)])
        unusable = [i.error for i in inputs if i.error is not None]
        if unusable:
            raise UsageError(unusable[0])
        classifier = Classifier(paths[0] if paths else None, threads=1, backend=backend)
        doc = photo_stages([i.path for i in inputs], classifier, log=progress)
    except FmnistEdgeError as exc:
        raise fail(exc) from None
    _print_report(doc, json_out, markdown, bench_report.photo_markdown, bench_report.photo_table)
    if doc["unreadable"]:
        raise typer.Exit(EXIT_FAILED)


def _print_report(doc: dict, json_out: bool, markdown: bool, to_markdown: Callable[[dict], str],
                  to_table: Callable[[dict], Any]) -> None:
    """A bench report as JSON, Markdown or a rich table (piped: 180 columns, not a guessed 80)."""
    import json

    if json_out:
        typer.echo(json.dumps(doc, indent=2))
    elif markdown:
        typer.echo(to_markdown(doc))
    else:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:
            console = Console(width=180)
        console.print(to_table(doc))


def _tensorflow_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None



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
top-1 matches and no score moves by more than 1e-4 (the export's own XNNPACK kernels). Within a
few quantization steps: interpreters whose int8 kernels round differently (tflite-runtime's reference
kernels, LiteRT without XNNPACK) may move each score by up to 2 output quantization steps (0.033 each)
and flip at most 1 in 100 near ties. The numpy backend runs the float model, so it is judged by a
looser rule: every score within the distance export measured between the int8 and float models
(their manifest `max_abs_diff`s, plus 1e-4), and the golden top-1 wherever the golden scores
leave no closer race. With --model another file is run and its agreement is reported only, unless
it is the very file the golden scores came from.

Exit codes: 0 ok; 1 a check failed, or the golden data is corrupt; 2 usage error (bad option,
missing or unusable model, no golden data installed).
"""


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

        typer.echo(safe_text(unverified_warning(result.model)), err=True)
    if not result.ok:
        typer.echo(safe_text(result.summary()), err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(safe_text(result.summary()))


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
        typer.echo(safe_text(line))  # paths and version strings from the environment: one line each
    raise typer.Exit(EXIT_OK if report.ready else EXIT_FAILED)
