"""`bench`, `selftest` and `doctor`: what a user checks on a new device, and the exit codes they rely on.

Nothing here asserts a latency (these machines are shared and noisy): only that each command runs,
says what it measured, and fails in one line with the documented exit code. Benchmarks run on one
model with a 10 ms budget.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from fmnist_edge.app import app
from fmnist_edge.bench_report import markdown, rich_table
from fmnist_edge.export.golden import golden_entry, golden_indices, write_golden
from fmnist_edge.runtime import bench
from fmnist_edge.runtime.backends import load_backend
from fmnist_edge.runtime.doctor import known_problems
from fmnist_edge.runtime.formats import by_name
from fmnist_edge.runtime.golden import GOLDEN_FILE, load_golden
from fmnist_edge.runtime.manifest import bundled_dir, sha256_file
from fmnist_edge.runtime.selftest import OTHER_KERNEL_STEPS, quantization_step
from fmnist_edge.runtime.spec import NUM_CLASSES

ARTIFACTS = bundled_dir()
INT8_TFLITE = ARTIFACTS / by_name("tflite-int8").filename
GOLDEN = ARTIFACTS / GOLDEN_FILE
ROW_KEYS = {"format", "precision", "backend", "threads", "batch", "p50_ms", "p90_ms", "p99_ms", "throughput_ips",
            "peak_rss_mb", "size_bytes", "load_ms", "first_ms"}


def run(*args: object) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    # An uncaught exception shows up as exit code 1, which would pass for "check failed".
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


needs_golden = pytest.mark.skipif(not GOLDEN.is_file(), reason=f"needs {GOLDEN} (written by export --int8)")


# --- bench ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench_doc() -> dict:
    result = run("bench", INT8_TFLITE, "--budget", "0.01", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)  # stdout is the JSON document alone; progress went to stderr


@pytest.mark.slow
def test_bench_json_has_the_machine_and_one_row_per_thread_count_and_batch(bench_doc: dict) -> None:
    assert {"cpu", "cores", "python", "numpy"} <= set(bench_doc["machine"])
    rows = bench_doc["results"]
    threads = sorted({1, bench_doc["machine"]["cores"]})
    assert [(r["threads"], r["batch"]) for r in rows] == [(t, b) for t in threads for b in (1, 32, 256)]
    for row in rows:
        assert set(row) >= ROW_KEYS, ROW_KEYS - set(row)
        assert (row["format"], row["precision"], row["backend"]) == ("tflite", "int8", "litert")
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput_ips"] == pytest.approx(row["batch"] / row["p50_ms"] * 1e3, rel=1e-3)
        assert row["size_bytes"] == INT8_TFLITE.stat().st_size
        assert row["peak_rss_mb"] > 0 and row["runs"] >= bench.MIN_RUNS
        assert "accuracy" not in row  # only measured with --accuracy


@pytest.mark.slow
def test_the_default_bench_runs_every_bundled_model_on_every_installed_backend() -> None:
    # What `fmnist-edge bench` does with no arguments; a tiny budget keeps it to seconds.
    from fmnist_edge.runtime import machine, registry
    from fmnist_edge.runtime.manifest import load_manifest

    result = run("bench", "--budget", "0.01", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    usable = {i.backend for i in machine.probe_all() if i.usable}
    expected = {(m["file"], row.name) for m in load_manifest()["models"] for row in registry.for_kind(m["format"])
                if row.name in usable and row.runs(m["precision"])}
    measured = [(r["file"], r["backend"]) for r in rows if r["backend"] != "keras"]
    assert set(measured) == expected
    per_load = len(bench.thread_counts()) * len(bench.BATCHES)
    assert all(measured.count(pair) == per_load for pair in expected)
    # The Keras baseline joins when TensorFlow is installed and the .keras file is beside the models.
    keras_expected = importlib.util.find_spec("tensorflow") is not None and (ARTIFACTS / "fmnist_cnn.keras").is_file()
    assert any(r["backend"] == "keras" for r in rows) == keras_expected


@pytest.mark.slow
def test_bench_markdown_is_a_table_with_a_header_row() -> None:
    result = run("bench", INT8_TFLITE, "--budget", "0.01", "--markdown")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| model | backend | threads | batch | p50 ms |")
    assert re.fullmatch(r"\|(---:?\|)+", lines[1])
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + len(bench.thread_counts()) * 3
    assert any("VmHWM" in line for line in lines)  # says what the RSS column is


def test_the_default_table_shows_every_row_and_explains_rss(bench_doc: dict) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(rich_table(bench_doc))
    text = console.export_text()
    assert "p99 ms" in text and "images/s" in text and "VmHWM" in text
    assert text.count("tflite int8") == len(bench_doc["results"])


def test_bench_accuracy_is_added_to_every_row_of_the_model() -> None:
    # The CLI loads the 10k test set; the library takes any labelled images, so a few will do here.
    (target,), _ = bench.targets([INT8_TFLITE])
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    labels = np.arange(20) % NUM_CLASSES
    doc = bench.run_bench([target], bench.Settings(budget=0.005, batches=(1,)), (images, labels))
    accuracies = {row["accuracy"] for row in doc["results"]}
    assert len(accuracies) == 1 and 0.0 <= accuracies.pop() <= 1.0
    assert markdown(doc).splitlines()[0].endswith("| accuracy |")


@pytest.mark.slow
def test_bench_keras_adds_a_baseline_measured_after_the_interpreters() -> None:
    pytest.importorskip("tensorflow", reason="needs the [train] extra")
    # The package ships no .keras file; the committed one is in the checkout.
    keras_model = Path(__file__).resolve().parents[1] / "artifacts" / by_name("keras").filename
    # A fresh process: TensorFlow's memory must not show in the interpreter rows' peak RSS.
    result = subprocess.run(
        [sys.executable, "-m", "fmnist_edge", "bench", INT8_TFLITE, keras_model, "--json", "--budget", "0.01"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    assert [r["format"] for r in rows][-3:] == ["keras"] * 3
    keras_rows = [r for r in rows if r["format"] == "keras"]
    assert {(r["precision"], r["backend"], r["threads"]) for r in keras_rows} == {("fp32", "keras", None)}
    assert max(r["peak_rss_mb"] for r in rows[:-3]) < min(r["peak_rss_mb"] for r in keras_rows)


def test_bench_refuses_both_output_formats_and_bad_files_in_one_line(tmp_path: Path) -> None:
    assert run("bench", "--json", "--markdown").exit_code == 2
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    result = run("bench", broken, "--budget", "0.01")
    assert result.exit_code == 2  # an unusable model is a usage error, as in every command
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in result.output


# --- selftest ------------------------------------------------------------------------------------

OK_LINE = re.compile(
    r"selftest ok: (\d+)/(\1) top-1, max \|Δ score\| \S+, preprocessing identical "
    r"\(litert [\d.]+, numpy [\d.]+, Pillow [\d.]+\)"
)


@needs_golden
def test_selftest_prints_one_ok_line_and_exits_0() -> None:
    result = run("selftest")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert OK_LINE.fullmatch(result.stdout.strip()), result.stdout


@needs_golden
def test_selftest_fails_in_one_line_when_golden_scores_were_altered(tmp_path: Path) -> None:
    data = dict(np.load(GOLDEN))
    data["scores"][0] = data["scores"][0][::-1]  # as if the device computed a different answer
    np.savez(tmp_path / GOLDEN_FILE, **data)
    result = run("selftest", "--golden", tmp_path / GOLDEN_FILE)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("selftest failed: ") and "top-1" in line


def reference_kernel_scores() -> tuple[np.ndarray, float]:
    """The golden images on LiteRT's reference int8 kernels (no XNNPACK): what tflite-runtime 2.14 computes;
    and the model's output scale, the step between its scores."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(INT8_TFLITE), num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    images = load_golden(GOLDEN).images[..., None]
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(images.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], images)
    interp.invoke()
    out = interp.get_output_details()[0]
    scale, zero = out["quantization"]
    return (interp.get_tensor(out["index"]).astype(np.float32) - zero) * scale, float(scale)


@needs_golden
def test_selftest_passes_other_int8_kernels_within_a_few_quantization_steps_and_says_so(tmp_path: Path) -> None:
    # Golden scores from the reference kernels, replayed on XNNPACK: the same gap tflite-runtime has
    # against the shipped (XNNPACK) golden scores, measured on real kernels rather than made up.
    pytest.importorskip("ai_edge_litert", reason="needs LiteRT")
    data = dict(np.load(GOLDEN))
    data["scores"], scale = reference_kernel_scores()
    step = quantization_step(data["scores"])
    assert step is not None and abs(step - scale) < 1e-6  # the shipped model's output scale
    moved = np.abs(data["scores"] - np.load(GOLDEN)["scores"])
    assert moved.max() > 1e-4, "the reference kernels gave XNNPACK's scores: this test proves nothing"
    steps = round(float(moved.max()) / step)
    assert 1 <= steps <= OTHER_KERNEL_STEPS
    np.savez(tmp_path / GOLDEN_FILE, **data)
    result = run("selftest", "--golden", tmp_path / GOLDEN_FILE)
    assert result.exit_code == 0, result.stderr
    plural = "s" if steps > 1 else ""
    assert f"within {steps} quantization step{plural} ({step:.3g} each) of the golden scores" in result.stdout

    # A step more than other kernels give on one score, or two flipped top-1 in 100, is not rounding:
    # fail, naming the rule.
    data["scores"][5, 2] = np.load(GOLDEN)["scores"][5, 2] + (OTHER_KERNEL_STEPS + 1) * step
    np.savez(tmp_path / GOLDEN_FILE, **data)
    result = run("selftest", "--golden", tmp_path / GOLDEN_FILE)
    assert result.exit_code == 1
    assert f"(tolerance {OTHER_KERNEL_STEPS} quantization steps of {step:.3g})" in result.stderr
    assert "of the golden scores: other int8 kernels" not in result.stderr  # no claim of passing in a failure
    data["scores"], _ = reference_kernel_scores()
    top = data["scores"].argmax(1)
    for i in np.flatnonzero(top == np.load(GOLDEN)["scores"].argmax(1))[:2]:
        data["scores"][i] = np.roll(data["scores"][i], 1)  # another class on top, scores on the grid
    np.savez(tmp_path / GOLDEN_FILE, **data)
    result = run("selftest", "--golden", tmp_path / GOLDEN_FILE)
    assert result.exit_code == 1 and "top-1 differ from the golden scores (at most 1 may)" in result.stderr


def test_quantization_step_is_read_off_int8_scores_only() -> None:
    levels = np.array([[-3, 0, 7, 1, 2, 5, 4, 3, -1, -2]], dtype=np.float32)
    assert quantization_step((levels - 3) * np.float32(0.05)) == pytest.approx(0.05, rel=1e-5)
    # Float scores are on no grid: no step's leeway, so a float golden file keeps the strict rule.
    floats = np.random.default_rng(0).normal(size=(100, NUM_CLASSES)).astype(np.float32)
    assert quantization_step(floats) is None


@needs_golden
def test_selftest_fails_on_a_corrupt_golden_file_and_exits_2_when_there_is_none(tmp_path: Path) -> None:
    corrupt = tmp_path / GOLDEN_FILE
    corrupt.write_bytes(GOLDEN.read_bytes()[:1000])  # truncated download
    result = run("selftest", "--golden", corrupt)
    assert result.exit_code == 1
    assert "golden.npz" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    # An intact file that is not the one the manifest beside it records: replaced, not trusted.
    replaced = tmp_path / "replaced"
    replaced.mkdir()
    shutil.copy(GOLDEN, replaced / GOLDEN_FILE)
    manifest = json.loads((GOLDEN.parent / "manifest.json").read_text())  # a whole manifest: the schema is checked
    manifest["golden"] = {"file": GOLDEN_FILE, "sha256": "0" * 64}
    (replaced / "manifest.json").write_text(json.dumps(manifest))
    result = run("selftest", "--golden", replaced / GOLDEN_FILE)
    assert result.exit_code == 1 and "does not match the manifest" in result.stderr
    missing = run("selftest", "--golden", tmp_path / "nothing.npz")
    assert missing.exit_code == 2
    assert missing.stderr.strip().startswith("error: no golden data at ")


@needs_golden
def test_selftest_on_another_model_reports_agreement_without_judging_it() -> None:
    pytest.importorskip("onnxruntime", reason="needs the [onnx] extra")
    result = run("selftest", "--backend", "onnxruntime")
    assert result.exit_code == 0, result.stderr
    assert "is not the golden model: reported only" in result.stdout


def test_export_writes_golden_data_that_selftest_accepts(tmp_path: Path) -> None:
    # The export -> runtime contract, without TensorFlow: write_golden on the shipped int8 model.
    labels = np.repeat(np.arange(NUM_CLASSES), 12)
    images = np.random.default_rng(1).integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
    path = write_golden(tmp_path, images, labels, INT8_TFLITE)
    golden = load_golden(path)
    assert len(golden) == 100 and np.bincount(golden.labels).tolist() == [10] * NUM_CLASSES
    np.testing.assert_array_equal(golden.indices, golden_indices(labels))
    np.testing.assert_array_equal(golden.scores, load_backend(INT8_TFLITE, threads=1).run(golden.images[..., None]))
    assert golden_entry(tmp_path, sha256_file(INT8_TFLITE))["images"] == 100
    assert golden_entry(tmp_path, "0" * 64) is None  # recorded from another model: not listed
    result = run("selftest", "--golden", path, "--model", INT8_TFLITE)
    assert result.exit_code == 0 and result.stdout.startswith("selftest ok: 100/100 top-1"), result.output


# --- doctor --------------------------------------------------------------------------------------


def test_doctor_lists_every_interpreter_and_exits_0_when_ready() -> None:
    result = run("doctor")
    assert result.exit_code == 0, result.stdout
    for name in ("litert", "tflite-runtime", "onnxruntime"):
        assert re.search(rf"^  {re.escape(name)} +(ok|missing) ", result.stdout, re.MULTILINE), name
    for fact in ("platform", "python", "numpy", "Pillow", "cpu", "int8 cpu", "memory"):
        assert re.search(rf"^{fact} ", result.stdout, re.MULTILINE), fact
    assert "sha256 matches the manifest" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("doctor: ready (")
    # Which backend a plain classify uses, and why each other usable one is not.
    used = re.findall(r"^  (\S+) +ok +\S+ +used: the first that imports", result.stdout, re.MULTILINE)
    assert len(used) == 1 and result.stdout.splitlines()[-1].startswith(f"doctor: ready ({used[0]} + ")
    assert re.search(rf"^  numpy +ok +\S+ +not used: {used[0]} comes first \(--backend numpy runs "
                     r"fmnist_cnn_fp32\.tflite; only fp32 models\)$", result.stdout, re.MULTILINE)


# --- the CPU features that decide int8 speed -------------------------------------------------------

CPUINFO = {
    # Real lines, trimmed: an Intel Xeon with VNNI, an AMD EPYC (Zen 2) without, a Pi 5, a Pi 4.
    "xeon": "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx_vnni amx_int8\n",
    "epyc-zen2": "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n",
    "pi5": "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
           "asimdrdm lrcpc dcpop asimddp\n",
    "pi4": "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n",
}


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [("xeon", ["AVX-512 VNNI", "AVX-VNNI"]), ("epyc-zen2", []), ("pi5", ["dotprod"]), ("pi4", [])],
)
def test_int8_features_are_read_from_cpuinfo_flags(cpu: str, expected: list[str]) -> None:
    from fmnist_edge.runtime.machine import int8_features, int8_summary

    assert int8_features(CPUINFO[cpu]) == expected
    assert int8_summary(expected).startswith(", ".join(expected) if expected else "none of AVX-512 VNNI")


def test_without_proc_cpuinfo_the_int8_features_are_unknown_and_nothing_posix_only_is_needed() -> None:
    # macOS and Windows have no /proc/cpuinfo, and Windows no `resource` module: doctor and bench
    # must still import there, and say "unknown" rather than "none".
    script = (
        "import sys\nsys.modules['resource'] = None\n"
        "import fmnist_edge.runtime.doctor, fmnist_edge.runtime.bench\n"
        "from fmnist_edge.runtime.machine import int8_features, int8_summary\n"
        "print(int8_features(None), int8_summary(None))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None unknown (no /proc/cpuinfo to read)"


def test_doctor_and_bench_report_this_cpus_int8_features(bench_doc: dict) -> None:
    from fmnist_edge.runtime.machine import cpuinfo, int8_features, int8_summary

    features = int8_features(cpuinfo())
    assert bench_doc["machine"]["int8_features"] == features
    assert f"int8 dot-product features: {', '.join(features) if features else 'none'}" in markdown(bench_doc)
    assert re.search(rf"^int8 cpu +{re.escape(int8_summary(features))}$", run("doctor").stdout, re.MULTILINE)


HEALTHY = {"machine_name": "x86_64", "bits": 64, "python": (3, 11), "numpy_version": "2.1.0",
           "installed": {"litert": "2.3.0"}, "usable": ["litert"]}


def test_a_healthy_machine_gets_no_warnings() -> None:
    assert known_problems(**HEALTHY) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"installed": {"tflite-runtime": "2.14.0"}, "usable": []}, "numpy"),
        ({"python": (3, 12), "installed": {}, "usable": []}, "Python 3.12"),
        ({"machine_name": "armv7l", "bits": 32, "installed": {}, "usable": []}, "32-bit ARM"),
        # A Raspberry Pi with a 64-bit kernel and a 32-bit OS: uname says aarch64, wheels must be armv7l.
        ({"machine_name": "aarch64", "bits": 32, "installed": {}, "usable": []}, "32-bit Python"),
    ],
)
def test_known_bad_combinations_are_warned_about(change: dict, expected: str) -> None:
    warnings = known_problems(**{**HEALTHY, **change})
    assert any(expected in w for w in warnings), warnings


# --- processes: a 4 GB address-space cap (no TensorFlow: tests/test_runtime.py walks every module) --


@needs_golden
@pytest.mark.parametrize("command", [["selftest"], ["classify", "examples/test_0000_ankle_boot.png"]])
def test_classify_and_selftest_run_under_a_4_gb_address_space_cap(command: list[str]) -> None:
    # A small board has ~1-4 GB; interpreters that reserve huge virtual ranges would fail there.
    # (Measured: both commands pass down to a 256 MB cap on x86_64; they fail below ~200 MB.)
    if shutil.which("prlimit") is None:
        pytest.skip("needs prlimit (util-linux)")
    result = subprocess.run(
        ["prlimit", f"--as={4 * 2**30}", "--", sys.executable, "-m", "fmnist_edge", *command],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
