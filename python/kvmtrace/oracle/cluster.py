"""A campaign on a Dask cluster (the ``[cluster]`` extra): each task is submitted to the
scheduler and runs on a worker of a KVM host, which needs kvmtrace with the
``[reference]`` extra installed. A task whose worker dies is retried by Dask on
another worker; one that keeps killing workers (Dask's ``allowed-failures``) comes
back as ``KilledWorker``. Dask counts the tasks merely queued on that worker too, so
the pool submits each such task once more: only the task that kills its workers is lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from kvmtrace.exceptions import UnsupportedError
from kvmtrace.oracle.pool import Outcome, resolve

CONNECT_TIMEOUT_S = 30
KILLED_RETRIES = 2  # submissions of a task whose worker died before it is reported lost


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
        task: dict[str, tuple[int, Any, int]] = {}  # future key -> (index, payload, tries)

        def submit(i: int, p: Any, tries: int) -> Any:
            fut = self.client.submit(fn, p, key=f"kvmtrace-{fn.__name__}-{tag}-{i}-{tries}", pure=False)
            task[fut.key] = (i, p, tries)
            self._futures.append(fut)
            return fut

        try:
            for i, p in enumerate(payloads):
                submit(i, p, 1)
            with self.client.as_current():  # as_completed finds its client here, not in a global default
                done = self._d.as_completed(self._futures)
            for fut in done:
                i, p, tries = task[fut.key]
                out = self._outcome(i, fut)
                if out.status == "lost" and tries < KILLED_RETRIES:
                    # Tasks merely queued on a worker that died are "suspicious" too: run each
                    # once more, so only the task that kills its workers is lost.
                    done.add(submit(i, p, tries + 1))
                    continue
                yield out
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
