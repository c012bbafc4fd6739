"""What plugin code may not do to the host: end it, stall it, or leave torch's global state changed.

A benchmark job runs plugin code (``train_step``, ``sample``, ``validation_metrics``). Faults of
that code become a failure of that one job, so the other models still run:

* it raises ``SystemExit``, a ``KeyboardInterrupt`` that no Ctrl-C caused (a real one raises
  [`UserInterrupt`][zoo.errors.UserInterrupt], see `user_interrupts`) or ``MemoryError``:
  `fault_message` says so in one line;
* it never returns: a `Watchdog` armed with a deadline (the end of a time budget, or a stop
  signal) plus a grace period raises `Stalled` in the main thread, again each second; if the
  code still does not return (it swallows every exception, or blocks inside C), the watchdog calls
  its ``on_kill`` (which records the failure) and ends the process;
* it changes torch's global settings (default dtype, grad mode, threads, RNG): `torch_state`
  restores them when the job ends.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from zoo.errors import UserInterrupt, ZooError
from zoo.text import one_line

#: Seconds a step may run past the end of its time budget before the watchdog stops it.
BUDGET_GRACE_SECONDS = 120.0
#: Seconds a step may run after SIGTERM/SIGINT before the watchdog stops it.
SIGNAL_GRACE_SECONDS = 20.0
#: Seconds the stopped code has to return once `Stalled` is raised, before the process ends.
KILL_SECONDS = 10.0
#: The signal the watchdog thread sends the main thread to raise `Stalled` there.
_WAKE = signal.SIGALRM

_active: list[Watchdog] = []


class Stalled(BaseException):  # noqa: N818 - like KeyboardInterrupt: `except Exception` must not swallow it
    """Raised in the main thread by a `Watchdog` whose deadline passed."""


class Stopped(ZooError):
    """The job was stopped by a signal after its step did not return; exit code 128 + signal."""

    def __init__(self, signum: int, message: str):
        self.exit_code = 128 + signum
        super().__init__(message)


def fault_message(exc: BaseException) -> str | None:
    """One line for an exception plugin code may raise to end or stop the host (``SystemExit``,
    a ``KeyboardInterrupt`` no Ctrl-C caused, ``MemoryError``, `Stalled`); ``None`` for
    any other exception, and for a real Ctrl-C ([`UserInterrupt`][zoo.errors.UserInterrupt])."""
    if isinstance(exc, Stalled):
        return str(exc)
    if isinstance(exc, SystemExit):
        return f"plugin code called sys.exit({exc.code!r}){_where(exc)}"
    if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, UserInterrupt):
        return f"plugin code raised KeyboardInterrupt (no Ctrl-C was pressed){_where(exc)}"
    if isinstance(exc, MemoryError):
        return f"out of memory: {one_line(exc, where=True)}"
    return None


def _where(exc: BaseException) -> str:
    text = one_line(exc, where=True)
    return text[text.rindex(" (at "):] if text.endswith(")") and " (at " in text else ""


@contextlib.contextmanager
def signal_raises(signum: int, exc_type: type[BaseException]) -> Iterator[None]:
    """While inside, signal ``signum`` tells the running `Watchdog` (a step that does not
    return gets its grace, then stops) and raises ``exc_type``; the previous handler comes back
    after. Main thread only (elsewhere a no-op, as Python allows handlers only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(received: int, _frame: Any) -> None:
        stop_requested(received)
        raise exc_type

    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


def user_interrupts() -> contextlib.AbstractContextManager[None]:
    """While inside, Ctrl-C raises [`UserInterrupt`][zoo.errors.UserInterrupt] (a ``KeyboardInterrupt``),
    so it can be told from a ``KeyboardInterrupt`` that plugin code raised. Main thread only."""
    return signal_raises(signal.SIGINT, UserInterrupt)


def stop_requested(signum: int) -> None:
    """Tell the running `Watchdog` (if any) that SIGINT/SIGTERM arrived: the step running
    now gets `SIGNAL_GRACE_SECONDS` to return. Called from signal handlers (the trainer's)."""
    for dog in _active:
        dog.signal(signum)


class Watchdog:
    """Stops the main thread's code when a deadline passes; see the module docstring.

    Use as a context manager in the main thread. `arm` sets the deadline (seconds from now,
    ``None`` to disarm) and names the code it guards; `signal` brings the deadline forward to
    `SIGNAL_GRACE_SECONDS` from now. When it passes, `Stalled` is raised in the main
    thread (every second until `disarm`); after ``kill_after`` more seconds
    ``on_kill(message, exit_code)`` is called from the watchdog's thread and the process exits
    with ``exit_code`` (1, or 128 + the signal's number).
    """

    def __init__(self, on_kill: Callable[[str, int], None] | None = None, kill_after: float | None = None):
        self.on_kill = on_kill
        self.kill_after = KILL_SECONDS if kill_after is None else kill_after
        self.signum: int | None = None  # the stop signal received, if any
        self.message = ""
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._what = "plugin code"
        self._why = ""
        self._fired_at: float | None = None
        self._signal_deadline: float | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: Any = None

    def __enter__(self) -> Watchdog:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(_WAKE, self._raise)
            self._thread = threading.Thread(target=self._watch, name="zoo-watchdog", daemon=True)
            self._thread.start()
        _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _active.remove(self)
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            signal.signal(_WAKE, self._previous)

    def arm(self, seconds: float | None, what: str = "plugin code", why: str = "") -> None:
        """Stop ``what`` if it still runs ``seconds`` from now (``why``: the deadline, in words)."""
        with self._lock:
            self._what, self._why = what, why
            self._deadline = None if seconds is None else time.monotonic() + seconds

    def disarm(self) -> None:
        """No deadline, not even a stop signal's; a `Stalled` already raised is acknowledged
        (no more are raised, the process is not ended)."""
        with self._lock:
            self._deadline, self._signal_deadline, self._fired_at = None, None, None

    def signal(self, signum: int) -> None:
        """A stop signal arrived: whatever runs now has `SIGNAL_GRACE_SECONDS` to return."""
        with self._lock:
            if self.signum is None:
                self.signum = signum
                self._signal_deadline = time.monotonic() + SIGNAL_GRACE_SECONDS

    def _due(self, now: float) -> bool:
        return any(d is not None and now >= d for d in (self._deadline, self._signal_deadline))

    def _raise(self, _signum: int, _frame: Any) -> None:
        with self._lock:
            fired = self._fired_at is not None
        if fired:
            raise Stalled(self.message)

    def _watch(self) -> None:
        main = threading.main_thread().ident
        last_sent = 0.0
        while not self._done.wait(0.05):
            now = time.monotonic()
            with self._lock:
                if self._fired_at is None and not self._due(now):
                    continue
                if self._fired_at is None:
                    self._fired_at = now
                    self.message = self._describe()
                fired_at = self._fired_at
            if now - fired_at > self.kill_after:
                self._kill()
                return
            if now - last_sent >= 1.0 and main is not None:
                last_sent = now
                signal.pthread_kill(main, _WAKE)

    def _describe(self) -> str:
        if self._signal_deadline is not None and time.monotonic() >= self._signal_deadline:
            name = signal.Signals(self.signum or signal.SIGTERM).name
            return f"{self._what} did not return within {SIGNAL_GRACE_SECONDS:g}s of {name}; stopped"
        return f"{self._what} did not return {self._why}; stopped"

    def _kill(self) -> None:
        code = 128 + self.signum if self.signum is not None else 1
        message = f"{self.message}, and it ignored being stopped for {self.kill_after:g}s: process ended"
        try:
            if self.on_kill is not None:
                self.on_kill(message, code)
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.write(f"zoo: error: {message}\n")
                sys.stderr.flush()
            os._exit(code)


@contextlib.contextmanager
def torch_state() -> Iterator[None]:
    """Restore torch's global settings when the block ends, whatever the code inside changed:
    default dtype and device, grad mode, intra-op threads, deterministic and anomaly modes, float32
    matmul precision, and the torch, CUDA, NumPy and Python RNG states."""
    import numpy as np
    import torch

    saved: dict[str, Any] = {
        "dtype": torch.get_default_dtype(), "grad": torch.is_grad_enabled(), "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(), "anomaly": torch.is_anomaly_enabled(),
        "matmul": torch.get_float32_matmul_precision(), "rng": torch.get_rng_state(),
        "numpy": np.random.get_state(), "python": random.getstate(),
    }
    if hasattr(torch, "get_default_device"):
        saved["device"] = torch.get_default_device()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        saved["cuda"] = torch.cuda.get_rng_state_all()
    try:
        yield
    finally:
        torch.set_default_dtype(saved["dtype"])
        torch.set_grad_enabled(saved["grad"])
        if torch.get_num_threads() != saved["threads"]:
            torch.set_num_threads(saved["threads"])
        torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
        torch.set_anomaly_enabled(saved["anomaly"])
        torch.set_float32_matmul_precision(saved["matmul"])
        torch.set_rng_state(saved["rng"])
        np.random.set_state(saved["numpy"])
        random.setstate(saved["python"])
        if "device" in saved and torch.get_default_device() != saved["device"]:
            # None for the CPU: an explicit default device costs a torch-function mode on every call
            torch.set_default_device(None if saved["device"].type == "cpu" else saved["device"])
        if "cuda" in saved:
            torch.cuda.set_rng_state_all(saved["cuda"])
