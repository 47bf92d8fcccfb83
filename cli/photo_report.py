"""The two pictures `evaluate-photos` writes, drawn with Pillow alone (it runs on the device, where
matplotlib is not installed): a confusion matrix, and a contact sheet that shows each photo beside
the 28x28 input the model got, so a person can see why a photo fails."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fmnist_edge.common.atomic import atomic_path
from fmnist_edge.output import safe_text
from fmnist_edge.runtime.confusion_image import confusion_image
from fmnist_edge.runtime.errors import ImageError, UsageError
from fmnist_edge.runtime.photo_eval import PhotoResult, PhotoSummary
from fmnist_edge.runtime.preprocess import open_image
from fmnist_edge.runtime.spec import CLASS_NAMES

THUMB = 112  # px per photo and per enlarged model input on the contact sheet
COLUMNS = 6  # photo pairs per row
PAGE_PHOTOS = 300  # per contact sheet page: 50 rows, a 1344x7100 image of 29 MB while it is drawn
RIGHT, WRONG, UNSURE = (20, 140, 60), (200, 30, 30), (200, 130, 0)


def check_report_folder(report: Path, photos: Path) -> None:
    """Refuse, before any photo is scored, a report folder that cannot take the report: a file, a
    path through a file, a folder we may not write in, or the photo folder itself (a report page
    could replace a photo). Nothing is created: a probe file is made and removed at once."""
    base = report
    while not os.path.lexists(base) and base.parent != base:
        base = base.parent  # the folder the report folder would be made in
    if base == report and not report.is_dir():
        raise UsageError(f"--out {report}: is a file, not a folder")
    if not base.is_dir():
        raise UsageError(f"--out {report}: {base} is a file, so no folder can be made under it")
    if base == report and _same_file(report, photos):
        raise UsageError(f"--out {report}: is the photo folder; choose another, so no photo is overwritten")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        raise UsageError(f"--out {report}: cannot write in {base} ({exc.strerror or exc})") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def confusion_png(summary: PhotoSummary, title: str) -> Image.Image:
    return confusion_image(summary.confusion(), title, "rows: true class (no photos: empty row)")


def write_contact_sheets(summary: PhotoSummary, folder: Path, report: Path) -> list[Path]:
    """The contact sheet, PAGE_PHOTOS photos a page: contact_sheet.png, then contact_sheet-2.png and on.
    Pages, because one sheet grows with the photos (20,000 of them made a 1.4 GB image, and a
    MemoryError under a 1.5 GB cap); one page is drawn at a time. Pages a larger earlier run left
    in `report` are removed, so every page there belongs to this run."""
    results = sorted(summary.results, key=lambda r: (r.correct, r.file))
    pages = [results[i : i + PAGE_PHOTOS] for i in range(0, len(results), PAGE_PHOTOS)]
    written = []
    for number, page in enumerate(pages, start=1):
        path = report / ("contact_sheet.png" if number == 1 else f"contact_sheet-{number}.png")
        save_png(contact_sheet_png(page, folder), path)
        written.append(path)
    for stale in report.glob("contact_sheet-*.png"):
        match = re.fullmatch(r"contact_sheet-(\d+)\.png", stale.name)
        if match and int(match[1]) > len(pages):
            stale.unlink(missing_ok=True)
    return written


def contact_sheet_png(results: list[PhotoResult], folder: Path) -> Image.Image:
    """One page, in the order given: each photo, its model input, and a caption in green (right),
    red (wrong) or orange (right but unsure)."""
    font = ImageFont.load_default()
    caption = 30
    rows = -(-len(results) // COLUMNS)
    sheet = Image.new("RGB", (COLUMNS * 2 * THUMB, rows * (THUMB + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, r in enumerate(results):
        x, y = (k % COLUMNS) * 2 * THUMB, (k // COLUMNS) * (THUMB + caption)
        sheet.paste(_thumbnail(folder / r.file), (x, y))
        sheet.paste(Image.fromarray(np.asarray(r.pixels), "L").resize((THUMB, THUMB), Image.Resampling.NEAREST)
                    .convert("RGB"), (x + THUMB, y))
        colour = WRONG if not r.correct else UNSURE if r.unsure else RIGHT
        draw.text((x + 2, y + THUMB + 2), safe_text(r.file)[:30], fill="black", font=font)
        answer = f"{CLASS_NAMES[r.predicted]} {100 * r.confidence:.0f}%" + (" unsure" if r.unsure else "")
        truth = "" if r.correct else f" (is {CLASS_NAMES[r.true]})"
        draw.text((x + 2, y + THUMB + 15), answer + truth, fill=colour, font=font)
    return sheet


def _thumbnail(path: Path) -> Image.Image:
    """The photo as the model saw it before segmentation (EXIF-rotated), letterboxed to a square."""
    tile = Image.new("RGB", (THUMB, THUMB), (240, 240, 240))
    try:
        image = open_image(path).convert("RGB")
    except (ImageError, OSError):  # changed on disk since it was scored: leave the tile blank
        return tile
    image.thumbnail((THUMB, THUMB))
    tile.paste(image, ((THUMB - image.width) // 2, (THUMB - image.height) // 2))
    return tile
