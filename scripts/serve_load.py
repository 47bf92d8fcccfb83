"""Load benchmark for `fmnist-edge serve`: prints figures, passes or fails nothing.

Starts a real server process, times start to first answer and reads its idle memory, then for 1,
2 and 8 concurrent clients (threads here, each on its own keep-alive connection) posts the test
photos round and round for --seconds each: requests/s, p50 and p99 latency, errors, and the
server's peak RSS. In the same run, with the server idle, it measures classify in-process on the
same photos (Classifier.classify on the 36 photos' bytes: decode, preprocess, one batched model
call, as `classify` does a folder), before the server starts and after it stops, and gives the
server's requests/s as a ratio of their mean.

The clients share the machine with the server: on 2 cores their own CPU time (HTTP and JSON in
Python) is taken from the server's, so the ratio is a lower bound of what separate phones see.

    .venv/bin/python scripts/serve_load.py [--seconds 20] [--photos tests/data/photos] [-- serve options]
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = (1, 2, 8)


def rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1)) / 1024


def post(connection: http.client.HTTPConnection, data: bytes) -> int:
    connection.request("POST", "/classify", body=data, headers={"Content-Type": "application/octet-stream"})
    response = connection.getresponse()
    body = response.read()
    if response.status == 200:
        json.loads(body)  # a client reads the answer too
    return response.status


def start(options: list[str], photo: bytes, log: Path) -> tuple[subprocess.Popen, int, float]:
    """(process, port, seconds from launch to the first answer)."""
    out = log.open("w")
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "fmnist_edge", "serve", "--port", "0", "--no-access-log",
                                *options], stdout=out, stderr=subprocess.STDOUT)
    port = None
    while True:
        if process.poll() is not None:
            raise SystemExit(f"serve exited {process.returncode}: {log.read_text()}")
        if port is None:
            found = re.search(r"at http://[\d.]+:(\d+)/", log.read_text())
            port = int(found.group(1)) if found else None
        if port is not None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if post(connection, photo) == 200:
                    connection.close()
                    return process, port, time.perf_counter() - started
            except OSError:
                pass
        time.sleep(0.005)


def load(port: int, photos: list[bytes], clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads posting round and round for `seconds`; latencies of the requests that ended in time."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = k * len(photos) // clients  # each client starts at another photo
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                ok = post(connection, photos[i % len(photos)]) == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            if ok:
                latencies[k].append(time.perf_counter() - t0)
            else:
                errors[k] += 1
            i += 1
        connection.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ms = 1e3 * np.concatenate([np.array(x) for x in latencies])
    return {"clients": clients, "requests": len(ms), "rps": len(ms) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "errors": sum(errors)}


def in_process(photos: list[bytes], seconds: float) -> float:
    """Photos/s of Classifier.classify on the photos' bytes, one thread, as `classify` runs a folder."""
    from fmnist_edge.runtime.classifier import Classifier

    classifier = Classifier()
    classifier.classify(photos)  # warm-up
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        classifier.classify(photos)
        done += len(photos)
    return done / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrency level")
    parser.add_argument("--photos", type=Path, default=ROOT / "tests" / "data" / "photos")
    parser.add_argument("serve_options", nargs="*", help="passed to serve (after --)")
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted(args.photos.glob("*.jpg"))]
    from fmnist_edge.runtime import machine

    # In-process before and after the load, and their mean as the base: the machine's other work
    # drifts over minutes, and the two figures show by how much.
    before = in_process(photos, args.seconds / 2)
    with tempfile.TemporaryDirectory() as tmp:
        process, port, first = start(args.serve_options, photos[0], Path(tmp) / "serve.log")
        try:
            time.sleep(1.0)
            idle = rss_mb(process.pid, "VmRSS")
            rows = []
            for clients in CLIENTS:
                rows.append(load(port, photos, clients, args.seconds))
                rows[-1]["peak_rss_mb"] = rss_mb(process.pid, "VmHWM")
                print(f"{clients} client(s): {rows[-1]['rps']:.1f} req/s", file=sys.stderr, flush=True)
        finally:
            process.terminate()
            code = process.wait(10)
    after = in_process(photos, args.seconds / 2)
    baseline = (before + after) / 2
    command = " ".join(["scripts/serve_load.py", *sys.argv[1:]])
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine moves every figure
    print(f"{datetime.date.today()}, {machine.cpu_model()}, {machine.cores()} cores, Python "
          f"{platform.python_version()}, load average {load_average}; `{command}`; {len(photos)} photos from "
          f"{args.photos.name}/, {args.seconds:g} s per row")
    print()
    print("| clients | requests/s | vs in-process | p50 ms | p99 ms | errors | server peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clients']} | {r['rps']:.1f} | {r['rps'] / baseline:.2f}x | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
              f"| {r['errors']} | {r['peak_rss_mb']:.0f} |")
    print()
    print(f"in-process classify: {baseline:.1f} photos/s (one thread; {before:.1f} before the load, {after:.1f} "
          f"after); start to first answer: {first:.2f} s; "
          f"idle RSS after it: {idle:.0f} MB; exit code after SIGTERM: {code}")


if __name__ == "__main__":
    main()
