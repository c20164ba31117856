"""Correctness of the contenders (not timed): every loop records the same events.

* the shipped guest bytes are what their assembly sources say;
* the C loop and the pure-Python loop record STEP_LOOP's architectural pcs;
* kvmtrace, the C loop and the Python loop record identical pc/dr6/dr7/exception
  columns for the same guest (and identical rip/rsp/rax with register capture,
  apart from rsp, whose reset value differs: 0x7000 in the baselines, 0x8000 in
  kvmtrace's real-mode layout);
* the hot guest stops on its exit port after the expected number of steps.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from kvmtrace import bench
from kvmtrace._bench import cbaseline
from kvmtrace._bench.guests import (
    HOT_CALLS,
    HOT_FUNC_OFFSET,
    HOT_GUEST,
    HOT_GUEST_ASM,
    LOAD_ADDR,
    STEP_LOOP,
    STEP_LOOP_ASM,
    assemble,
    hot_guest_single_step_events,
    make_hot_guest,
    step_loop_expected_pcs,
)
from kvmtrace._bench.pyloop import run_pyloop


@pytest.mark.skipif(not (shutil.which("as") and shutil.which("objcopy")), reason="binutils not installed")
def test_guest_bytes_match_assembly():
    assert assemble(STEP_LOOP_ASM) == STEP_LOOP
    assert assemble(HOT_GUEST_ASM.format(calls=HOT_CALLS)) == HOT_GUEST
    assert assemble(HOT_GUEST_ASM.format(calls=3)) == make_hot_guest(3)
    assert HOT_GUEST[HOT_FUNC_OFFSET] == 0x40  # hot: inc %ax


def test_numpy_pcs_match_reference_list():
    n = 1001
    assert bench.step_loop_pcs(n).tolist() == step_loop_expected_pcs(n)
    assert bench.step_loop_checksum(n) == np.bitwise_xor.reduce(np.array(step_loop_expected_pcs(n), dtype=np.uint64))


def test_wide_loop_bytes():
    if not (shutil.which("as") and shutil.which("objcopy")):
        pytest.skip("binutils not installed")
    src = ".code16\nstart:\n" + "  inc %ax\n" * 100 + "  jmp start\n"
    # GNU as picks a short jmp for a near target; the wide loop always uses rel16.
    code = bench.wide_loop(100)
    assert code[:100] == assemble(src)[:100]
    assert code[100] == 0xE9 and int.from_bytes(code[101:103], "little", signed=True) == -103


def test_c_loop_records_pc_sequence(c_binary):
    n = 4001
    r = cbaseline.run_c(c_binary, STEP_LOOP, n, dump=True)
    assert r["events"] == n and r["stop"] == "limit"
    assert r["checksum"] == bench.step_loop_checksum(n)
    a = r["arrays"]
    bench.check_step_loop(a["pc"], a["dr6"], a["exception"])


def test_c_loop_sync_regs(c_binary):
    n = 1000
    a = cbaseline.run_c(c_binary, STEP_LOOP, n, regs=True, dump=True)["arrays"]
    bench.check_step_loop(a["pc"], a["dr6"], a["exception"])
    np.testing.assert_array_equal(a["rip"], a["pc"])  # cs.base == 0
    assert np.all(a["rsp"] == 0x7000)
    np.testing.assert_array_equal(a["rax"], np.arange(n) // 4 + 1)


def test_c_loop_hot_guest_stops_on_exit_port(c_binary):
    calls = 50
    r = cbaseline.run_c(c_binary, make_hot_guest(calls), 10**6, dump=True)
    assert r["stop"] == "io"
    assert r["events"] == hot_guest_single_step_events(calls)
    assert int(np.count_nonzero(r["arrays"]["pc"] == LOAD_ADDR + HOT_FUNC_OFFSET)) == calls


def test_pyloop_records_pc_sequence(kvm_available):
    n = 2001
    arrays: dict = {}
    r = run_pyloop(STEP_LOOP, n, regs=True, arrays=arrays)
    assert r["events"] == n and r["stop"] == "limit"
    assert r["checksum"] == bench.step_loop_checksum(n)
    bench.check_step_loop(arrays["pc"], arrays["dr6"], arrays["exception"])
    assert list(arrays["rip"]) == list(arrays["pc"])


def test_pyloop_hot_guest_stops_on_exit_port(kvm_available):
    calls = 20
    r = run_pyloop(make_hot_guest(calls), 10**6)
    assert r["stop"] == "io"
    assert r["events"] == hot_guest_single_step_events(calls)


@pytest.mark.parametrize("regs", [False, True], ids=["plain", "regs"])
def test_kvmtrace_c_and_python_record_the_same_columns(c_binary, regs):
    n = 3001
    c = cbaseline.run_c(c_binary, STEP_LOOP, n, regs=regs, dump=True)["arrays"]
    py: dict = {}
    run_pyloop(STEP_LOOP, n, regs=regs, arrays=py)
    m = bench.kvmtrace_step_loop(n, registers=bench.REGS if regs else (), keep_trace=True)
    t = m.extra["trace"]
    names = ["pc", "dr6", "dr7", "exception"]
    kt = {k: t.column(k) for k in names}
    if regs:
        names += ["rip", "rax"]
        kt.update(rip=t.registers["rip"], rax=t.registers["rax"])
    for k in names:
        np.testing.assert_array_equal(kt[k], c[k], err_msg=f"kvmtrace vs C: column {k}")
        np.testing.assert_array_equal(np.asarray(py[k]), c[k], err_msg=f"pure Python vs C: column {k}")


def test_kvmtrace_hot_guest_single_step_count(kvm_available):
    import kvmtrace

    calls = 30
    with kvmtrace.Machine(memory_size=bench.MEMORY_SIZE, mode="real") as m:
        m.load(make_hot_guest(calls), LOAD_ADDR)
        m.set_entry(LOAD_ADDR)
        t = m.trace(kvmtrace.GuestDebug(single_step=True))
    assert t.stop_reason == kvmtrace.StopReason.EXIT_PORT
    assert len(t) == hot_guest_single_step_events(calls)
    assert int(np.count_nonzero(t.pc == LOAD_ADDR + HOT_FUNC_OFFSET)) == calls
