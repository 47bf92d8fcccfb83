"""`classify --save-input DIR`: write each 28x28 model input as a PNG, and never destroy anything.

Why: `classify photos/ --save-input photos/` replaced `x.png` with its 28x28 model input, and
wrote a `.png` beside each `.jpg` that the next run classified too. So the folder may not hold
any of the inputs (checked before anything is read or written), and each file is created with
O_EXCL: a name that exists (from an earlier run, another input with the same stem, a symlink)
is never opened; the next free `stem-N.png` is used instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fmnist_edge.inputs import Input
from fmnist_edge.runtime.errors import UsageError

MAX_SUFFIX = 10_000  # stem-2.png ... stem-10000.png; beyond that the folder is full of our own files


class InputSaver:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise UsageError(f"--save-input {directory}: not a folder")

    def refuse_folders_of(self, inputs: list[Input]) -> None:
        """Refuse a folder that holds any input: compared by device and inode, so another spelling
        of the same folder (./photos, a symlink to it) is caught too. Checked once per distinct parent."""
        try:
            target = os.stat(self.directory)
        except OSError:
            return  # it does not exist yet, so it holds nothing
        seen: set[str] = set()
        for item in inputs:
            if item.path is None:
                continue
            parent = os.path.dirname(os.path.abspath(item.path))
            if parent in seen:
                continue
            seen.add(parent)
            try:
                st = os.stat(parent)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                raise UsageError(f"--save-input {self.directory}: the folder holds inputs ({item.shown}); "
                                 "choose another folder, so nothing there is overwritten or classified twice")

    def create(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--save-input {self.directory}: cannot create the folder ({exc.strerror or exc})") \
                from None

    def save(self, item: Input, pixels: np.ndarray) -> str | None:
        """Write `pixels` under a new name; returns an error message instead of raising, so that
        one unwritable file is one error line and the batch goes on."""
        from PIL import Image

        stem = Path(item.shown).stem or "input"
        for n in range(1, MAX_SUFFIX + 1):
            target = self.directory / (f"{stem}.png" if n == 1 else f"{stem}-{n}.png")
            created = False
            try:
                with open(target, "xb") as fh:  # O_CREAT | O_EXCL: never an existing file or link
                    created = True
                    Image.fromarray(pixels, "L").save(fh, format="PNG")
                return None
            except FileExistsError:
                continue
            except OSError as exc:
                if created:
                    target.unlink(missing_ok=True)  # ours, half written (a full disk)
                return f"{item.shown}: --save-input: cannot write {target} ({exc.strerror or exc})"
        return f"{item.shown}: --save-input: {self.directory} already has {MAX_SUFFIX} files named {stem}*.png"
