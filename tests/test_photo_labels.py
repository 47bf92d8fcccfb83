"""labels.csv, the one file that says what every training and evaluation photo is: each mistake in it
is one line naming the file and the row, exit 2, before a photo is scored; nothing it holds raises
anything else."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from helpers import invoke

from fmnist_edge.runtime.errors import FmnistEdgeError
from fmnist_edge.runtime.photo_labels import LabelledPhoto, read_labels

PHOTOS = Path(__file__).resolve().parent / "data" / "photos"
A, B, C = "0_tshirt_top_08.jpg", "9_ankle_boot_08.jpg", "1_trouser_07.jpg"


def folder_with(tmp_path: Path, labels_csv: str) -> Path:
    for name in (A, B, C):
        shutil.copy(PHOTOS / name, tmp_path / name)
    (tmp_path / "labels.csv").write_text(labels_csv, encoding="utf-8")
    return tmp_path


BAD = {
    # name: (labels.csv, what the one line says)
    "listed-twice": (f"file,label\n{A},0\n{B},9\n{A},0\n", f"labels.csv:4: '{A}' is listed again (row 2)"),
    "two-labels": (f"file,label\n{A},0\n{A},3\n", "labels.csv:3: "),
    "both-splits": (f"file,label,split\n{A},0,train\n{B},9,val\n{A},0,val\n",
                    "labels.csv:4: '0_tshirt_top_08.jpg' is listed again (row 2), in split 'val' here and 'train'"),
    "split-case": (f"file,label,split\n{A},0,train\n{B},9,Train\n", "labels.csv:3: split 'Train' is not one of"),
    "split-typo": (f"file,label,split\n{A},0,train\n{B},9,trian\n", "labels.csv:3: split 'trian'"),
    "split-test": (f"file,label,split\n{A},0,train\n{B},9,test\n", "labels.csv:3: split 'test'"),
    "split-empty": (f"file,label,split\n{A},0,train\n{B},9,\n", "labels.csv:3: split ''"),
    "name-contradicts": (f"file,label,class_name\n{A},0,T-shirt/top\n{B},9,Sandal\n",
                         "labels.csv:3: label 9 is 'Ankle boot', but class_name says 'Sandal'"),
    "superscript": (f"file,label\n{A},²\n", "labels.csv:2: label '²' is not a class number"),
    "full-width": (f"file,label\n{A},３\n", "labels.csv:2: label '３'"),
    "arabic-indic": (f"file,label\n{A},٣\n", "labels.csv:2: label '٣'"),
    "inner-space": (f"file,label\n{A},1 0\n", "labels.csv:2: label '1 0'"),
    "negative": (f"file,label\n{A},-0\n", "labels.csv:2: label '-0'"),
    "no-label": (f"file,label,class_name\n{A},,\n", "labels.csv:2: no label"),
    "parent": ("file,label\n..,0\n", "labels.csv:2: '..' is not a plain file name"),
    "nul": ("file,label\na\x00b.jpg,0\n", "labels.csv:2: 'a\\x00b.jpg' is not a plain file name"),
    "repeated-column": (f"file,label,label\n{A},0,1\n", "labels.csv:1: the header names column 'label' more than once"),
}


@pytest.mark.parametrize("name", BAD)
def test_each_mistake_in_labels_csv_is_one_line_naming_the_row_before_any_photo_is_scored(
    name: str, tmp_path: Path
) -> None:
    labels_csv, says = BAD[name]
    folder = folder_with(tmp_path, labels_csv)
    result = invoke("evaluate-photos", folder, "--no-plots")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [result.stderr.strip()] and says in result.stderr
    assert result.stdout == "", "a photo was scored before the labels were checked"


def test_a_mistake_in_the_other_split_is_refused_too(tmp_path: Path) -> None:
    # --split val must not hide that the train rows overlap it: the overlap is what spoils val.
    folder = folder_with(tmp_path, f"file,label,split\n{A},0,val\n{B},9,train\n{A},0,train\n")
    result = invoke("evaluate-photos", folder, "--split", "val", "--no-plots")
    assert result.exit_code == 2 and "in split 'train' here and 'val'" in result.stderr


def test_the_same_photo_under_two_names_is_listed_twice(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, f"file,label,split\n{A},0,train\nlink.jpg,0,val\n")
    os.symlink(A, folder / "link.jpg")
    with pytest.raises(FmnistEdgeError, match=r"labels.csv:3: 'link.jpg' is the same file as '0_tshirt_top_08.jpg'"):
        read_labels(folder / "labels.csv", split="train", require_files=True)


def test_a_split_option_other_than_train_or_val_is_refused(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, f"file,label,split\n{A},0,train\n{B},9,val\n")
    result = invoke("evaluate-photos", folder, "--split", "Val", "--no-plots")
    assert result.exit_code == 2 and "split 'Val': must be one of train, val" in result.stderr


def test_agreeing_columns_spaces_and_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    labels_csv = (f"\ufefffile , label,class_name,split\n{A} , 0 ,T-shirt/top,train\n{B},,Ankle boot,val\n"
                  f"{C}, 1,,val\n")
    folder = folder_with(tmp_path, labels_csv)
    assert read_labels(folder / "labels.csv", require_files=True) == [
        LabelledPhoto(A, 0, "train"), LabelledPhoto(B, 9, "val"), LabelledPhoto(C, 1, "val")]
    assert [p.file for p in read_labels(folder / "labels.csv", split="val")] == [B, C]


def test_the_shipped_test_photos_pass_every_check() -> None:
    assert len(read_labels(PHOTOS / "labels.csv", require_files=True)) == 36


# --- fuzz: whatever the file holds, a clean list or FmnistEdgeError ------------------------------

PIECES = ["file", "label", "class_name", "split", A, B, "0", "9", "10", "²", "３", " ", "", "Bag", "Ankle boot",
          "train", "val", "Train", "\x00", "\n", "\r", '"', ",", "\ufeff", "\udc80", "é", "../x", ".", "\x1b[31m",
          "1e3", "-1", "0x1", "٣", "\u2028", "a" * 300]


def random_csv(rng: random.Random) -> bytes:
    """A valid labels file with a few random mutations: a field replaced by pieces real and hostile
    files are made of, a field added or dropped, a row repeated, the bytes cut short (not UTF-8)."""
    rows = [["file", "label", "class_name", "split"], [A, "0", "T-shirt/top", "train"], [B, "9", "Ankle boot", "val"],
            [C, "1", "Trouser", "val"]]
    for _ in range(rng.choice([0, 0, 1, 1, 2, 4])):
        row = rng.choice(rows)
        mutation = rng.randrange(4)
        if mutation == 0 and row:
            row[rng.randrange(len(row))] = "".join(rng.choices(PIECES, k=rng.randint(0, 3)))
        elif mutation == 1:
            row.insert(rng.randint(0, len(row)), rng.choice(PIECES))
        elif mutation == 2 and row:
            del row[rng.randrange(len(row))]
        else:
            rows.append(list(row))
    data = "\n".join(",".join(row) for row in rows).encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:
        data = data[: rng.randint(0, len(data))] + bytes([rng.randint(0x80, 0xFF)])
    return data


def test_fuzzed_labels_files_give_a_list_or_one_line_never_another_exception(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, "")
    rng = random.Random(26)
    outcomes = {"list": 0, "refused": 0}
    for _ in range(1000):
        (folder / "labels.csv").write_bytes(random_csv(rng))
        split = rng.choice([None, "train", "val"])
        try:
            photos = read_labels(folder / "labels.csv", split=split, require_files=rng.random() < 0.5)
        except FmnistEdgeError as exc:
            assert str(exc).startswith(("cannot read labels file", str(folder), "split "))
            outcomes["refused"] += 1
        else:
            assert photos and all(0 <= p.label <= 9 for p in photos)
            assert len({p.file for p in photos}) == len(photos)
            outcomes["list"] += 1
    assert min(outcomes.values()) > 20, outcomes  # the generator reaches both outcomes
