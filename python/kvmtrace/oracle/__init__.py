"""The differential reference oracle: KVM against a reference x86 model, step by step.

``kvmtrace.diff(guest)`` single-steps a guest on KVM and on Unicorn from the same state
and reports the first instruction where KVM's account differs (``DiffReport``).
``kvmtrace fuzz`` generates random programs from a documented instruction pool, diffs
each one, groups the divergences by cause and shrinks an example of each.

Unicorn (the ``[reference]`` extra) and Dask (``[cluster]``) are imported only when used.
"""

from __future__ import annotations

from kvmtrace.oracle.report import KINDS, DiffReport, Divergence

__all__ = ["KINDS", "DiffReport", "Divergence", "diff"]


def diff(guest, mode="long", max_steps=None, reference="unicorn", **kw):  # type: ignore[no-untyped-def]
    """Compare a guest's run on KVM with the reference model (see kvmtrace.oracle.differ.diff)."""
    from kvmtrace.oracle.differ import diff as _diff

    return _diff(guest, mode, max_steps, reference, **kw)
