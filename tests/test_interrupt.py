"""A signal inside StopOnSignals stops a command with 130 on every route out of the interpreter."""

from __future__ import annotations

import sys

import pytest

from fmnist_edge.interrupt import StopOnSignals


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill with SIGTERM ends the process on Windows")
def test_a_signal_raises_a_keyboard_interrupt_that_python_does_not_turn_into_a_sigint_death() -> None:
    # Raised inside `exec` of a string (as dataclasses do while a module imports), an exception of the
    # exact type KeyboardInterrupt makes `python -m fmnist_edge` end by SIGINT (-2) even after the
    # command caught it and asked for 130; tests/test_evaluate_photos_edges.py met it 5 times in 80.
    with pytest.raises(KeyboardInterrupt) as caught, StopOnSignals(raise_at_once=True):
        exec("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")
    assert type(caught.value) is not KeyboardInterrupt

