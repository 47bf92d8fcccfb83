"""The work behind `fmnist-edge evaluate-photos`: check the report folder, score, write the report, print.

Command-line code, as cli/classify.py is for classify: the figures come from runtime/photo_eval.py.
Its lines go out through classify's own `Lines` (cli/output.py), because the file names in them
come from labels.csv, which whoever made the folder wrote: a newline or a terminal escape in a
name is shown escaped, never as a forged line or a recoloured terminal. A closed stdout ends it
quietly (130) and a full one is one line (2), as for classify. The report folder is checked before
the model loads, so a bad --out costs nothing; Ctrl-C or SIGTERM stop it at once (130), and the
report files are written atomically, so a stop leaves no half-written picture.
"""

from __future__ import annotations

import json
from pathlib import Path

from fmnist_edge.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, exit_code
from fmnist_edge.interrupt import StopOnSignals
from fmnist_edge.output import Lines, safe_text
from fmnist_edge.runtime.errors import FmnistEdgeError, UsageError
from fmnist_edge.runtime.photo_eval import PhotoSummary
from fmnist_edge.runtime.spec import CLASS_NAMES


def evaluate_photos_exit_code(folder: Path, labels: Path | None = None, split: str | None = None,
                              model: Path | None = None, threads: int | None = None, out: Path | None = None,
                              plots: bool = True, json_out: bool = False) -> int:
    """Run evaluate-photos and return its exit code: 0 every photo read, 1 some could not be, 2 the
    request cannot run (labels, model, --out, a full disk), 130 stopped or stdout closed."""
    lines = Lines()
    try:
        with StopOnSignals(raise_at_once=True):  # nothing to finish: the figures need every photo
            return _run(lines, folder, labels, split, model, threads, out, plots, json_out)
    except FmnistEdgeError as exc:
        lines.err(f"error: {exc}")
        return exit_code(exc)
    except KeyboardInterrupt:
        lines.err("interrupted")
        return EXIT_INTERRUPTED


def default_report(folder: Path, split: str | None) -> Path:
    return Path("report") / ("photos-" + folder.resolve().name + (f"-{split}" if split else ""))


def _run(lines: Lines, folder: Path, labels: Path | None, split: str | None, model: Path | None,
         threads: int | None, out: Path | None, plots: bool, json_out: bool) -> int:
    from fmnist_edge.classify import unverified_warning
    from fmnist_edge.photo_report import check_report_folder
    from fmnist_edge.runtime.classifier import Classifier
    from fmnist_edge.runtime.photo_eval import evaluate_photos

    report = (out or default_report(folder, split)) if plots else None
    if report is not None:
        check_report_folder(report, folder)
    classifier = Classifier(model, threads=threads)
    if not classifier.verified:
        lines.err(unverified_warning(classifier.path))
    summary = evaluate_photos(folder, labels or folder / "labels.csv", classifier, split=split)
    for message in summary.unreadable:
        lines.err(f"error: {message}")
    pages = 0
    if report is not None:
        title = f"{folder.name}{f' ({split})' if split else ''}: {100 * summary.accuracy:.1f}% ({classifier.path.name})"
        pages = _write_report(summary, folder, report, safe_text(title))
    if json_out:
        document = summary.to_json(classifier.path.name, split)
        document["report"] = str(report) if report is not None else None
        for line in json.dumps(document, indent=2).splitlines():  # ASCII, control characters escaped
            lines.out(line)
    else:
        for line in _text(summary, classifier.path.name, report, pages):
            lines.out(line)
    lines.flush()
    if lines.closed:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary.unreadable else EXIT_OK


def _write_report(summary: PhotoSummary, folder: Path, report: Path, title: str) -> int:
    """confusion.png and the contact sheet's pages; how many pages. A write that fails after the
    check (a disk that fills) is one UsageError naming the file."""
    from fmnist_edge.photo_report import confusion_png, save_png, write_contact_sheets

    target = report / "confusion.png"
    try:
        save_png(confusion_png(summary, title), target)
        return len(write_contact_sheets(summary, folder, report))
    except OSError as exc:
        raise UsageError(f"cannot write the report in {report} ({exc.strerror or exc})") from None


def _text(summary: PhotoSummary, model: str, report: Path | None, pages: int) -> list[str]:
    """The plain-text report: a line per photo, recall per class, then the totals."""
    out = []
    for r in summary.results:
        mark = "ok  " if r.correct else "MISS"
        out.append(f"{mark} {r.file:<28} true {CLASS_NAMES[r.true]:<12} predicted {CLASS_NAMES[r.predicted]:<12} "
                   f"{100 * r.confidence:5.1f}%{'  unsure' if r.unsure else ''}")
    out.append("per class (recall):")
    for name, row in summary.per_class().items():
        out.append(f"  {name:<12} {row['correct']:>3}/{row['photos']:<3} {100 * row['recall']:5.1f}%")
    sure = summary.sure()
    hits = sum(r.correct for r in summary.results)
    unread = f"; {len(summary.unreadable)} could not be read" if summary.unreadable else ""
    out.append(f"top-1 on {len(summary.results)} photos: {hits}/{len(summary.results)} = "
               f"{100 * summary.accuracy:.1f}% ({model}){unread}")
    right = "-" if sure["accuracy"] is None else f"{100 * sure['accuracy']:.1f}%"
    if summary.unsure_threshold is None:
        out.append("no calibrated unsure threshold for this model (no manifest value): nothing is flagged unsure")
    else:
        out.append(f"not flagged unsure (confidence >= {summary.unsure_threshold:.3f}): {sure['answers']} photos "
                   f"({100 * sure['coverage']:.1f}%), {right} right; {sure['flagged_unsure']} flagged unsure")
    if report is not None:
        sheets = f" (contact sheet in {pages} pages)" if pages > 1 else ""
        out.append(f"report: {report}{sheets}")
    return out
