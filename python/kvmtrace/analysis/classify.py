"""Per-event DR6 classification (see the package docstring, "Event classes"):
which cause bits an event carries, whether it is an instruction-breakpoint or
general-detect fault, and the cause bits its class allows and requires."""

from __future__ import annotations

from typing import Any

import numpy as np

from kvmtrace._core import Dr6
from kvmtrace.analysis.config import DebugConfig


class Classes:
    """Classification of a range of events.  Each field is a numpy array over the
    range, or a numpy scalar when it is the same for every event."""

    __slots__ = ("cause", "match", "exec_fault", "gd_fault", "fault", "allowed", "required")

    cause: Any  # DR6 cause bits (B0-B3, BD, BS, BT), uint16
    match: Any  # Bn of every enabled exec slot whose address is the event's pc
    exec_fault: Any
    gd_fault: Any
    fault: Any
    allowed: Any
    required: Any


def classify(cfg: DebugConfig, pc: np.ndarray, dr6: np.ndarray, faults_only: bool = False) -> Classes:
    """Classify events given their pc and DR6 (``faults_only``: stop after
    cause/match/exec_fault/gd_fault/fault)."""
    d = Classes()
    # every cause bit (B0-B3, BD, BS, BT) lives in the low 16 bits
    cause = dr6.astype(np.uint16)
    cause &= np.uint16(Dr6.CAUSE_MASK)
    d.cause = cause
    if cfg.exec_slots:
        match = np.zeros(pc.shape[0], dtype=np.uint16)
        for s in cfg.exec_slots:
            np.bitwise_or(match, np.uint16(Dr6.b(s.index)), out=match, where=pc == np.uint64(s.addr))
        d.match = match
        d.exec_fault = (cause & match) != 0
    else:
        d.match = np.uint16(0)
        d.exec_fault = np.False_
    if cfg.general_detect:
        d.gd_fault = ((cause & np.uint16(Dr6.BD)) != 0) & ~d.exec_fault
        d.fault = d.exec_fault | d.gd_fault
    else:
        d.gd_fault = np.False_
        d.fault = d.exec_fault
    if not faults_only:
        d.allowed = _allowed(cfg, d)
        d.required = _required(cfg, d)
    return d


def _allowed(cfg: DebugConfig, d: Classes) -> Any:
    """Exec fault: the matching Bn; GD fault: BD; trap: BS (if stepping) and the data Bn."""
    trap_allowed = np.uint16((Dr6.BS if cfg.single_step else 0) | cfg.data_mask)
    if cfg.exec_slots:
        allowed = np.where(d.exec_fault, d.match, trap_allowed)
        if cfg.general_detect:
            allowed = np.where(d.gd_fault, np.uint16(Dr6.BD), allowed)
        return allowed
    if cfg.general_detect:
        return np.where(d.gd_fault, np.uint16(Dr6.BD), trap_allowed)
    return trap_allowed


def _required(cfg: DebugConfig, d: Classes) -> Any:
    if cfg.single_step:
        if cfg.exec_slots or cfg.general_detect:
            return np.where(d.fault, d.allowed, np.uint16(Dr6.BS))
        return np.uint16(Dr6.BS)
    if cfg.exec_slots:
        # exec fault: the matching Bn; a trap at an exec address without any
        # data cause: the (missing) exec Bn.
        no_data = (d.cause & np.uint16(cfg.data_mask)) == 0
        required = np.where(d.exec_fault | no_data, d.match, np.uint16(0))
        if cfg.general_detect:
            required = np.where(d.gd_fault, np.uint16(Dr6.BD), required)
        return required
    if cfg.general_detect:
        return np.where(d.gd_fault, np.uint16(Dr6.BD), np.uint16(0))
    return np.uint16(0)
