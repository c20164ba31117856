"""A watchdog that interrupts a KVM_RUN of the main thread that overruns its deadline."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any


class RunTimeout(Exception):
    """Raised (from a signal handler) inside a KVM_RUN that overran its deadline."""


class Watchdog:
    """Interrupts a KVM_RUN of the main thread that overruns its deadline.

    A helper thread sends a real-time signal to the main thread while a deadline
    has passed; the signal makes the blocking KVM_RUN return EINTR, ``run_once``
    then runs the Python handler, which raises :class:`RunTimeout`. Only the
    main thread can take Python signals: elsewhere the watchdog is inactive (a
    guest that never exits would then block; the bundled guests always exit).
    """

    SIGNAL = signal.SIGRTMIN + 6  # kvmtrace's own vCPU kick uses SIGRTMIN + 2

    def __init__(self) -> None:
        self.active = False
        self._deadline: float | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._target: int | None = None
        self._old: Any = None

    def __enter__(self) -> Watchdog:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(self.SIGNAL, self._on_signal)
            self._target = threading.main_thread().ident
            self._thread = threading.Thread(target=self._loop, name="kvmtrace-conformance-watchdog", daemon=True)
            self._thread.start()
            self.active = True
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._closed = True
            self._deadline = None
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self.active:
            signal.signal(self.SIGNAL, self._old if self._old is not None else signal.SIG_DFL)
        self.active = False

    def arm(self, deadline: float) -> None:
        with self._cond:
            self._deadline = deadline
            self._cond.notify_all()

    def disarm(self) -> None:
        with self._cond:
            self._deadline = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        d = self._deadline
        if d is not None and time.monotonic() >= d:
            self._deadline = None
            raise RunTimeout()

    def _loop(self) -> None:
        with self._cond:
            while not self._closed:
                d = self._deadline
                if d is None:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                if now < d:
                    self._cond.wait(d - now)
                    continue
                # Past the deadline: kick until the main thread disarms (a kick that
                # lands just before KVM_RUN is entered is lost, so repeat).
                if self._target is not None:
                    signal.pthread_kill(self._target, self.SIGNAL)
                self._cond.wait(0.02)
