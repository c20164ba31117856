"""Single-stepping across instructions that exit to userspace (port I/O, MMIO) and across HLT."""

from __future__ import annotations

from kvmtrace._core import GuestDebug
from kvmtrace.conformance.driver import GuestRun
from kvmtrace.conformance.model import Expect
from kvmtrace.conformance.scenarios.common import (
    PIO_PORT,
    SYNC,
    Scenario,
    static,
    step_trap,
)

STEP_PIO_CITE = (
    "SDM §18.3.1.4 (a single-step trap after every instruction, IN/OUT included); KVM api.rst KVM_EXIT_IO "
    "(userspace completes the access, then KVM_RUN resumes) and KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_SINGLESTEP): "
    "the access exits first, the step trap is reported when the instruction completes, pc after it."
)
STEP_MMIO_CITE = (
    "SDM §18.3.1.4; KVM api.rst KVM_EXIT_MMIO (KVM emulates the instruction, userspace supplies or takes "
    "the data) and KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_SINGLESTEP): the MMIO exit comes first, then the step "
    "trap after the emulated instruction, pc after it, DR6.BS."
)


def run_step_across_pio(g: GuestRun) -> None:
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("step to the OUT", step_trap(g.sym("pio_out"))),
        ("OUT imm8 exits to userspace", Expect("io_out", port=PIO_PORT)),
        ("step trap after OUT imm8", step_trap(g.sym("pio_out_end"), kind="step_after_pio_out")),
        ("IN imm8 exits to userspace", Expect("io_in", port=PIO_PORT)),
        ("step trap after IN imm8", step_trap(g.sym("pio_in_end"), kind="step_after_pio_in")),
        ("step over MOV DX", step_trap(g.sym("pio_dx"))),
        ("OUT DX exits to userspace", Expect("io_out", port=PIO_PORT + 2)),
        ("step trap after OUT DX", step_trap(g.sym("pio_dx_end"), kind="step_after_pio_out")),
    ], stop_on_io=True)


def mmio_addr(mode: str) -> int:
    return 0xA0000 if mode == "real" else 0xC0000000


def run_step_across_mmio(g: GuestRun) -> None:
    a = mmio_addr(g.mode)
    g.expect("setup", SYNC)
    g.set_debug(GuestDebug(single_step=True))
    g.expect_sequence([
        ("step to the MMIO store", step_trap(g.sym("mmio_w"))),
        ("the store exits to userspace", Expect("mmio_write", addr=a)),
        ("step trap after the MMIO store", step_trap(g.sym("mmio_w_end"), kind="step_after_mmio_store")),
        ("the load exits to userspace", Expect("mmio_read", addr=a)),
        ("step trap after the MMIO load", step_trap(g.sym("mmio_r_end"), kind="step_after_mmio_load")),
    ], stop_on_io=True)


FAMILY = (
    Scenario("step_across_pio", "single-step OUT/IN that exit to userspace", static("step_across_pio"),
             run_step_across_pio, STEP_PIO_CITE),
    Scenario("step_across_mmio", "single-step MMIO store and load", static("step_across_mmio"),
             run_step_across_mmio, STEP_MMIO_CITE,
             memory_size=lambda mode: 512 << 10 if mode == "real" else 16 << 20),
)
