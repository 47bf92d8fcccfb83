"""Show a bench result (runtime/bench.py's JSON document) as a terminal table or as Markdown.

Both views have the same columns, taken from one list, so the README table and the terminal
never disagree about what a column means. Load and first-inference times belong to a model
load, not a batch size, so they are shown once per load (on its batch-1 row).
"""

from __future__ import annotations

from collections.abc import Callable

Column = tuple[str, Callable[[dict], str]]


def _ms(value: float) -> str:
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _first_of_load(fn: Callable[[dict], str]) -> Callable[[dict], str]:
    return lambda r: fn(r) if r["batch"] == 1 else ""


COLUMNS: list[Column] = [
    ("model", lambda r: f"{r['format']} {r['precision']}"),
    ("backend", lambda r: r["backend"]),
    ("threads", lambda r: "default" if r["threads"] is None else str(r["threads"])),
    ("batch", lambda r: str(r["batch"])),
    ("p50 ms", lambda r: _ms(r["p50_ms"])),
    ("p90 ms", lambda r: _ms(r["p90_ms"])),
    ("p99 ms", lambda r: _ms(r["p99_ms"])),
    ("images/s", lambda r: f"{r['throughput_ips']:,.0f}"),
    ("runs", lambda r: str(r["runs"])),
    ("load ms", _first_of_load(lambda r: _ms(r["load_ms"]))),
    ("first ms", _first_of_load(lambda r: _ms(r["first_ms"]))),
    ("size KiB", lambda r: f"{r['size_bytes'] / 1024:,.0f}"),
    ("peak RSS MB", lambda r: "" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"),
]
ACCURACY: Column = ("accuracy", lambda r: f"{100 * r['accuracy']:.2f}%" if r.get("accuracy") is not None else "")


def columns(doc: dict) -> list[Column]:
    measured = any(r.get("accuracy") is not None for r in doc["results"])
    return [*COLUMNS, ACCURACY] if measured else COLUMNS


def machine_line(doc: dict) -> str:
    m = doc["machine"]
    int8 = m.get("int8_features")  # None: no /proc/cpuinfo (or a document from before it was recorded)
    features = "unknown" if int8 is None else ", ".join(int8) or "none"
    return (f"{m['cpu']}, {m['cores']} cores, {m['machine']} {m['bits']}-bit, int8 dot-product features: "
            f"{features}, Python {m['python']}, numpy {m['numpy']}")


def footnote(doc: dict) -> str:
    method = doc["method"]
    return (f"Latency: time.perf_counter around backend.run only, after warm-up; up to {method['max_runs']} runs "
            f"or {method['budget_s']:g} s per row; images/s = batch / p50. Inputs: {method['inputs']}. "
            f"Peak RSS: the whole bench process's peak so far (VmHWM), so it only grows down the table.")


def markdown(doc: dict) -> str:
    cols = columns(doc)
    lines = [
        "| " + " | ".join(name for name, _ in cols) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(cols))) + "|",
    ]
    lines += ["| " + " | ".join(fn(r) for _, fn in cols) + " |" for r in doc["results"]]
    return "\n".join([*lines, "", f"Measured on {machine_line(doc)}. {footnote(doc)}"])


def rich_table(doc: dict):
    from rich.table import Table

    table = Table(title=f"fmnist-edge bench: {machine_line(doc)}", caption=footnote(doc), caption_justify="left")
    cols = columns(doc)
    for i, (name, _) in enumerate(cols):
        table.add_column(name, justify="left" if i < 2 else "right", no_wrap=i < 2)
    previous = None
    for r in doc["results"]:
        load = (r["file"], r["backend"], r["threads"])
        if previous is not None and load != previous:
            table.add_section()
        previous = load
        table.add_row(*(fn(r) for _, fn in cols))
    return table


STAGE_COLUMNS = ("stage", "median ms", "p90 ms", "share")


def photo_rows(doc: dict) -> list[tuple[str, ...]]:
    """bench --photos: one row per stage, then the total."""
    return [(stage, _ms(row["median_ms"]), _ms(row["p90_ms"]), f"{100 * row['share']:.0f}%")
            for stage, row in doc["stages"].items()]


def photo_caption(doc: dict) -> str:
    method = doc["method"]
    return (f"{len(doc['photos'])} photos, each its fastest of {method['rounds']} rounds, from bytes in memory; "
            f"model {method['model']} on {method['backend']}, {method['threads']} thread. Median and p90 over the "
            f"photos; share of the median total. Machine: {machine_line(doc)}.")


def photo_markdown(doc: dict) -> str:
    lines = ["| " + " | ".join(STAGE_COLUMNS) + " |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in photo_rows(doc)]
    return "\n".join([*lines, "", photo_caption(doc)])


def photo_table(doc: dict):
    from rich.table import Table

    table = Table(title="fmnist-edge bench --photos: where a photo's time goes", caption=photo_caption(doc),
                  caption_justify="left")
    for i, name in enumerate(STAGE_COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in photo_rows(doc):
        table.add_row(*row)
    return table
