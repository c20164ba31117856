"""Local worker processes for a campaign: one task (one VM) at a time per worker.

Each worker is ``python -m kvmtrace.oracle.pool TASK`` fed pickled tasks over its
stdin and answering on its stdout (a fresh interpreter: nothing of the parent, no
VM fds or threads, is inherited, and the caller's script is never re-imported). A
worker that dies (a crash, a signal, the OOM killer) loses only the task it was
running: the pool reports that task as lost, starts a replacement and goes on.
Workers ignore SIGINT: Ctrl-C reaches the campaign in the parent, which stops them
and keeps what finished.
"""

from __future__ import annotations

import importlib
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from kvmtrace.exceptions import InvalidConfigError

_FRAME = struct.Struct("<Q")


@dataclass(frozen=True)
class Outcome:
    """What became of one task: ``status`` is "ok" (``value``), "error" or "lost" (``reason``)."""

    index: int
    status: str
    value: Any = None
    reason: str = ""


def resolve(path: str) -> Any:
    """``"package.module:function"`` -> the function (workers import it by name)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _send(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def _recv(stream: IO[bytes]) -> Any:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise EOFError
    (n,) = _FRAME.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def serve(fn_path: str) -> None:
    """The worker's loop: (index, payload) in, (index, status, value) out, until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fn = resolve(fn_path)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a task's prints must not corrupt the answer stream
    while True:
        try:
            index, payload = _recv(inp)
        except EOFError:
            return
        try:
            answer = (index, "ok", fn(payload))
        except Exception as e:  # the task failed; the worker lives on
            answer = (index, "error", f"{type(e).__name__}: {e}")
        _send(out, answer)


class _Worker:
    def __init__(self, fn_path: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen([sys.executable, "-m", "kvmtrace.oracle.pool", fn_path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.task: tuple[int, Any] | None = None

    def give(self, task: tuple[int, Any]) -> None:
        self.task = task
        assert self.proc.stdin is not None
        try:
            _send(self.proc.stdin, task)
        except (BrokenPipeError, OSError):
            pass  # it died: its stdout reports EOF and the task comes back as lost

    def stop(self, timeout: float = 2.0) -> None:
        for s in (self.proc.stdin, self.proc.stdout):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


class LocalPool:
    """``workers`` processes; ``map`` yields an :class:`Outcome` per task as they finish."""

    def __init__(self, workers: int) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidConfigError(f"invalid workers: expected a positive int, got {workers!r}")
        self.workers = workers
        self._live: list[_Worker] = []
        self._fn: str | None = None

    def map(self, fn_path: str, payloads: Iterable[Any]) -> Iterator[Outcome]:
        if self._fn != fn_path:  # workers serve one task function
            self.close()
            self._fn = fn_path
        todo = deque(enumerate(payloads))
        try:
            while todo and len(self._live) < self.workers:
                self._live.append(_Worker(fn_path))
            for w in self._live:
                if todo:
                    w.give(todo.popleft())
            while any(w.task is not None for w in self._live):
                yield from self._collect(fn_path, todo)
        finally:
            if any(w.task is not None for w in self._live):  # abandoned (Ctrl-C): stop the busy workers
                self.close()

    def _collect(self, fn_path: str, todo: deque[tuple[int, Any]]) -> Iterator[Outcome]:
        sel = selectors.DefaultSelector()
        busy = [w for w in self._live if w.task is not None]
        for w in busy:
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)  # type: ignore[arg-type]
        try:
            ready = [key.data for key, _ in sel.select()]
        finally:
            sel.close()
        for w in ready:
            task = w.task
            assert task is not None and w.proc.stdout is not None
            try:
                index, status, value = _recv(w.proc.stdout)
            except (EOFError, OSError, pickle.UnpicklingError):
                code = w.proc.wait()
                yield Outcome(task[0], "lost", reason=f"worker process died (exit code {code})")
                self._live.remove(w)
                w.stop()
                if todo:
                    fresh = _Worker(fn_path)
                    self._live.append(fresh)
                    fresh.give(todo.popleft())
                continue
            w.task = None
            yield Outcome(index, "ok", value) if status == "ok" else Outcome(index, "error", reason=value)
            if todo:
                w.give(todo.popleft())

    def close(self) -> None:
        for w in self._live:
            w.stop()
        self._live.clear()


if __name__ == "__main__":
    serve(sys.argv[1])
