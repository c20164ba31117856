"""ParquetSink: stream a running trace into a Parquet dataset directory.

Each chunk the engine hands over becomes one complete zstd part
(``part-NNNNN.parquet``), written under a hidden temporary name and renamed into
place, so a killed run leaves only whole parts. ``ParquetSink(root, run_id="a")``
writes to ``root/run=a/``: a directory of runs reads as one hive-partitioned dataset.
Every part carries the run facts (:mod:`kvmtrace.columnar.metadata`); the final part,
written by ``close()``, adds how the run ended.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kvmtrace.columnar.files import RUN_RE, check_run_id, part_name, why, write_atomically
from kvmtrace.columnar.metadata import META_KEY, base_meta, dumps, regions_json, run_facts
from kvmtrace.columnar.schema import arrow_schema, pa, pq, table
from kvmtrace.exceptions import SinkError


def _program_regions(machine: Any, program: Any) -> list[tuple[int, bytes]]:
    """The program's code as loaded (read back from the machine when it can be)."""
    prog = program if program is not None else getattr(machine, "program", None)
    if prog is None:
        return []
    out = []
    for seg in prog.segments:
        data = seg.data
        if machine is not None:
            try:
                data = machine.read(seg.addr, len(seg.data))
            except Exception:  # a closed Machine: the program's own bytes
                pass
        out.append((seg.addr, data))
    return out


class ParquetSink:
    """Streams trace chunks into a Parquet dataset directory (``part-NNNNN.parquet``, zstd).

    ``machine.trace(debug, sink="run.parquet")`` creates one; pass an instance
    (``sink=ParquetSink(root, m, debug, run_id="a")``) for a hive-style ``root/run=a/``.
    ``write(chunk)`` writes one complete part per chunk (raising SinkError when the
    directory is unwritable or the disk is full); ``close(trace)`` writes the tail rows
    and the final run facts as the last part. A directory that already holds parts is
    refused unless ``overwrite=True`` (which deletes only ``*.parquet`` files in it).
    """

    def __init__(self, path: str | os.PathLike[str], machine: Any = None, debug: Any = None, *,
                 run_id: str | None = None, compression: str = "zstd", compression_level: int | None = None,
                 overwrite: bool = False, program: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        self._pa, self._pq = pa(), pq()
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path) or isinstance(os.fspath(path), bytes):
            raise SinkError(f"invalid sink path {path!r}: give the name of a directory for the Parquet dataset, "
                            f"e.g. sink='run.parquet'")
        root = Path(os.fspath(path))
        if run_id is not None:
            run_id = check_run_id(run_id)
            self.path = root / f"run={run_id}"
        else:
            self.path = root
            m = RUN_RE.match(root.name)
            run_id = m.group(1) if m else None
        self.run_id = run_id
        self.compression, self.compression_level = compression, compression_level
        self._prepare(overwrite)
        self._meta = base_meta(machine=machine, debug=debug, program=program, run_id=run_id)
        if metadata:
            self._meta["metadata"] = dict(metadata)
        self._first_regions = _program_regions(machine, program)
        self.parts = 0
        self.rows = 0
        self.register_names: list[str] | None = None
        self.failed: BaseException | None = None
        self.closed = False

    def _prepare(self, overwrite: bool) -> None:
        p = self.path
        try:
            if p.exists() and not p.is_dir():
                if not overwrite:
                    raise SinkError(f"{p} is a file; a Parquet sink writes a dataset directory: choose another path "
                                    f"or pass overwrite=True")
                p.unlink()
            if p.is_dir():
                old = [f for f in p.iterdir() if f.name.endswith(".parquet") or f.name.endswith(".parquet.tmp")]
                if old and not overwrite:
                    raise SinkError(f"{p} already holds a trace ({len(old)} Parquet files): write to a new directory "
                                    f"or pass overwrite=True")
                for f in old:
                    f.unlink()
            p.mkdir(parents=True, exist_ok=True)
        except SinkError:
            raise
        except OSError as e:
            raise SinkError(f"cannot create the trace directory {p}: {why(e)}") from e
        if not os.access(p, os.W_OK | os.X_OK):
            raise SinkError(f"cannot write to the trace directory {p}: permission denied")

    def _write_part(self, rows: Any, meta: dict[str, Any]) -> Path:
        """Write the next part: ``rows`` is a trace or chunk (None: no rows, only facts)."""
        names = list(rows.register_names) if rows is not None else list(self.register_names or [])
        n = len(rows) if rows is not None else 0
        if self.register_names is None:
            self.register_names = names
        elif names != self.register_names and n:
            raise SinkError(f"chunk has register columns {names}, earlier parts have {self.register_names}")
        name = part_name(self.parts)
        final, tmp = self.path / name, self.path / f".{name}.tmp"
        meta.update(part=self.parts, rows=n, first_row=self.rows, registers=names or self.register_names or [])
        md = {META_KEY: dumps(meta)}
        if rows is None:
            schema = arrow_schema(names, md)
            t = self._pa.Table.from_arrays([self._pa.array([], type=f.type) for f in schema], schema=schema)
        else:
            t = table(rows, md)
        try:
            write_atomically(self._pq, t, final, tmp, compression=self.compression,
                             compression_level=self.compression_level, row_group_size=max(n, 1))
        except Exception as e:
            raise SinkError(f"cannot write {name} in {self.path}: {why(e)}") from e
        self.parts += 1
        self.rows += n
        return final

    def write(self, chunk: Any) -> None:
        """Write one chunk of rows (a ``kvmtrace._core.Trace``) as the next complete part."""
        if self.closed:
            raise SinkError(f"the sink for {self.path} is closed")
        meta = dict(self._meta)
        meta.update(final=False, stop_reason="running", event_count=self.rows + len(chunk))
        if self.parts == 0:
            meta["code_regions"] = regions_json(self._first_regions)
        try:
            self._write_part(chunk, meta)
        except Exception as e:
            # A failed write: the rows stay in memory (.trace) only. An interrupt
            # (Ctrl-C) is not a failure of the disk: the part was not renamed into
            # place, so close() writes these rows with the tail.
            self.failed = e
            raise

    def close(self, trace: Any) -> None:
        """Write the tail rows and the final run facts (stop reason, console, counts) as the last part.

        After a failed ``write`` this is best effort and never raises (the engine
        already reports the SinkError, with the unwritten rows in ``.trace``).
        Otherwise a failure raises SinkError with ``.trace`` set to ``trace``.
        """
        if self.closed:
            return
        self.closed = True
        meta = dict(self._meta)
        base_md = meta.pop("metadata", None) or {}
        meta.update(run_facts(trace))
        if base_md:
            meta["metadata"] = {**base_md, **meta["metadata"]}
        meta.update(final=True, code_regions=regions_json(trace.code_regions or self._first_regions))
        if self.failed is not None:
            # After a failed write the rows not written stay in memory (.trace) only, so
            # disk and memory never both hold a row; this last part (best effort) only
            # records how the run ended.
            if self.register_names is None:
                self.register_names = list(trace.register_names)
            try:
                self._write_part(None, meta)
            except Exception:
                pass
            return
        try:
            self._write_part(trace, meta)
        except Exception as e:
            err = SinkError(f"{e}; the {len(trace)} rows not written are in .trace")
            err.trace = trace  # type: ignore[attr-defined]
            raise err from e

    def __repr__(self) -> str:
        return f"<ParquetSink {self.path} parts={self.parts} rows={self.rows}{' closed' if self.closed else ''}>"
