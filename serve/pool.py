"""The model behind the server: a bounded pool of worker threads behind a bounded queue.

Why this shape: a photo costs 12-60 ms of decoding, resizing and segmentation (numpy and Pillow,
which release the GIL for most of it) and 0.1 ms of model. So the pool has one thread per core,
each with its own interpreter (an interpreter is not safe to share between threads), and at most
`queue` more requests may wait. A request holds its place from the moment its upload starts to
arrive until its photo is done, so the memory in hand is bounded too: (workers + queue) uploads at
most. Beyond that the server answers 503 at once, with Retry-After, rather than letting waits grow
without end.

A request that runs out of time is answered, but its photo is not taken from a thread that has
started on it (threads cannot be stopped); its place is given back only when the thread is done,
so the bound counts what the CPU is really doing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import queue
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist_edge.runtime.classifier import Classifier, Prediction
from fmnist_edge.runtime.contract import NON_FINITE, finite_rows
from fmnist_edge.runtime.errors import ModelError
from fmnist_edge.runtime.preprocess import preprocess


@dataclass(frozen=True)
class Answer:
    """One photo's answer: the prediction, and the exact 28x28 image the model saw (also as a PNG
    data: URL of a few hundred bytes, for the page to show enlarged; encoded on the worker thread)."""

    prediction: Prediction
    pixels: np.ndarray  # uint8 [28, 28]
    input_png: str


def png_data_url(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class TimedOut(Exception):
    """The photo was not done within the request's time limit."""


class ModelPool:
    """`workers` threads, each with its own Classifier of one model, and room for `queue` more requests."""

    def __init__(self, model: Path | None, backend: str | None, workers: int, queue_size: int) -> None:
        # One interpreter thread each: the pool's threads are the parallelism, and a 0.1 ms model
        # gains nothing from more (more would only fight the other workers for the same cores).
        self.classifiers = [Classifier(model, threads=1, backend=backend) for _ in range(workers)]
        self.workers = workers
        self.capacity = workers + queue_size
        self.in_hand = 0  # requests admitted and not yet done; changed on the event loop's thread only
        self._idle: queue.SimpleQueue[Classifier] = queue.SimpleQueue()
        for classifier in self.classifiers:
            self._idle.put(classifier)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="fmnist-edge-model")

    @property
    def first(self) -> Classifier:
        """Any of the classifiers: they all run the same file, so they agree on path, backend, threshold."""
        return self.classifiers[0]

    def admit(self) -> bool:
        """Take a place for a new request, or say there is none (the caller answers 503)."""
        if self.in_hand >= self.capacity:
            return False
        self.in_hand += 1
        return True

    def leave(self) -> None:
        """Give back a place taken by `admit` (a request that ends before its photo is submitted)."""
        self.in_hand -= 1

    async def classify(self, image: bytes, name: str, timeout: float,
                       after: Callable[[Answer], None] | None = None) -> Answer:
        """Preprocess and classify `image` on a worker thread, within `timeout` seconds. The caller
        has `admit`ted it; the place is given back when the thread is done with it, whatever the caller
        does meanwhile. `after` runs on the worker thread with the answer (--save-input writes there)."""
        loop = asyncio.get_running_loop()
        future: Future[Answer] = self._executor.submit(self._work, image, name, after)
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self.leave))
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except asyncio.TimeoutError:
            future.cancel()  # still waiting in the queue: never started; running: it finishes, unseen
            raise TimedOut from None

    def _work(self, image: bytes, name: str, after: Callable[[Answer], None] | None) -> Answer:
        pixels = preprocess(image, name=name)  # ImageError names the upload
        classifier = self._idle.get()
        try:
            probabilities = classifier.predict(pixels[None])
        finally:
            self._idle.put(classifier)
        if not finite_rows(probabilities).all():
            raise ModelError(f"{name}: {NON_FINITE}")
        (prediction,) = classifier.to_predictions(probabilities)
        answer = Answer(prediction, pixels, png_data_url(pixels))
        if after is not None:
            after(answer)
        return answer

    def close(self) -> None:
        """Let the threads finish what they have and stop (the server's shutdown waits for them)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
