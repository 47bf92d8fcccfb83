"""Print the README's table of shipped models from artifacts/manifest.json (no figure is retyped).

    python scripts/manifest_table.py [artifacts/manifest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/manifest.json")
    manifest = json.loads(path.read_text())
    source = manifest["source"]
    print("| file | format | precision | size | test accuracy | top-1 agreement with Keras "
          "| max abs Δ score | SHA-256 |")
    print("|---|---|---|---|---|---|---|---|")
    size = (path.parent / source["file"]).stat().st_size
    print(f"| {source['file']} | keras | fp32 | {size / 1024:.0f} KiB | {100 * source['test_accuracy']:.2f}% "
          f"| (reference) | – | `{source['sha256'][:12]}` |")
    for m in manifest["models"]:
        print(f"| {m['file']} | {m['format']} | {m['precision']} | {m['size_bytes'] / 1024:.0f} KiB "
              f"| {100 * m['test_accuracy']:.2f}% | {100 * m['agreement_with_keras']:.2f}% "
              f"| {m['max_abs_diff']:.1e} | `{m['sha256'][:12]}` |")


if __name__ == "__main__":
    main()
