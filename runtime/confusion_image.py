"""The one confusion-matrix picture: `evaluate` (10k test images) and `evaluate-photos` (a folder
of photos) both draw it here, with Pillow alone, so it draws on a device without matplotlib too."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fmnist_edge.runtime.spec import CLASS_NAMES

CELL = 44  # px per cell: room for a four-digit count


def confusion_image(counts: np.ndarray, title: str, footer: str = "rows: true class") -> Image.Image:
    """Rows: true class; columns: predicted. Shading is the share of the row (blue on the diagonal,
    red off it), and every count is printed, so a small class's mistakes show as plainly as a big one's."""
    font = ImageFont.load_default()
    label_w, top = 90, 60
    n = len(CLASS_NAMES)
    image = Image.new("RGB", (label_w + n * CELL + 10, top + n * CELL + 30), "white")
    draw = ImageDraw.Draw(image)
    draw.text((5, 5), title, fill="black", font=font)
    draw.text((label_w, 22), "predicted ->", fill="black", font=font)
    for j, name in enumerate(CLASS_NAMES):
        draw.text((label_w + j * CELL + 2, 40), name[:7], fill="black", font=font)
    for i, name in enumerate(CLASS_NAMES):
        y = top + i * CELL
        draw.text((5, y + CELL // 2 - 6), name, fill="black", font=font)
        row_total = counts[i].sum()
        for j in range(n):
            x = label_w + j * CELL
            share = counts[i, j] / row_total if row_total else 0.0
            shade = int(255 - 200 * share)
            fill = (shade, shade, 255) if i == j else (255, shade, shade)
            draw.rectangle([x, y, x + CELL - 2, y + CELL - 2], fill=fill, outline=(200, 200, 200))
            if counts[i, j]:
                text = str(counts[i, j])
                draw.text((x + CELL // 2 - 3 * len(text), y + CELL // 2 - 6), text, fill="black", font=font)
    draw.text((5, top + n * CELL + 8), footer, fill="black", font=font)
    return image
