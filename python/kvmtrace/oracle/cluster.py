"""A campaign on a Dask cluster (the ``[cluster]`` extra): each task is submitted to the
scheduler and runs on a worker of a KVM host, which needs kvmtrace with the
``[reference]`` extra installed. A task whose worker dies is retried by Dask on
another worker; one that keeps killing workers (Dask's ``allowed-failures``) comes
back as ``KilledWorker``. Dask counts the tasks merely queued on that worker too, so
the pool runs each such task once more at the end, alone on the cluster: only the task
that kills its worker by itself is lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from kvmtrace.exceptions import UnsupportedError
from kvmtrace.oracle.pool import Outcome, resolve

CONNECT_TIMEOUT_S = 30


def load_distributed() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise UnsupportedError(f"campaigns on a cluster need Dask ({e}): pip install 'kvmtrace[cluster]'") from None
    return distributed


class DaskPool:
    """Tasks on the cluster behind ``scheduler`` (e.g. ``tcp://host:8786``)."""

    def __init__(self, scheduler: str) -> None:
        distributed = load_distributed()
        self._d = distributed
        try:
            self.client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as e:
            raise UnsupportedError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        self._futures: list[Any] = []

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def map(self, fn_path: str, payloads: Iterable[Any]) -> Iterator[Outcome]:
        fn = resolve(fn_path)
        tag = uuid.uuid4().hex[:8]
        task: dict[str, tuple[int, Any]] = {}  # future key -> (index, payload)

        def submit(i: int, p: Any, attempt: str) -> Any:
            fut = self.client.submit(fn, p, key=f"kvmtrace-{fn.__name__}-{tag}-{i}-{attempt}", pure=False)
            task[fut.key] = (i, p)
            self._futures.append(fut)
            return fut

        suspects: list[tuple[int, Any]] = []
        try:
            for i, p in enumerate(payloads):
                submit(i, p, "0")
            with self.client.as_current():  # as_completed finds its client here, not in a global default
                for fut in self._d.as_completed(self._futures):
                    i, p = task[fut.key]
                    out = self._outcome(i, fut)
                    if out.status == "lost":
                        # Dask also fails the tasks that were only queued on a worker that
                        # died: decide later, each task alone.
                        suspects.append((i, p))
                        continue
                    yield out
            for i, p in suspects:
                # Alone on the cluster: only a task that kills its worker by itself is lost.
                fut = submit(i, p, "alone")
                with self.client.as_current():
                    self._d.wait([fut])
                yield self._outcome(i, fut)
        finally:
            self._cancel()

    def _outcome(self, i: int, fut: Any) -> Outcome:
        try:
            return Outcome(i, "ok", fut.result())
        except self._d.KilledWorker as e:
            return Outcome(i, "lost", reason=f"the task's Dask worker died: {e}")
        except Exception as e:  # the task raised on the worker
            return Outcome(i, "error", reason=f"{type(e).__name__}: {e}")

    def _cancel(self) -> None:
        if self._futures:
            self.client.cancel(self._futures)
            self._futures = []

    def close(self) -> None:
        self._cancel()
        self.client.close()
