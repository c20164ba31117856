"""Benchmark support shipped with kvmtrace (used by ``kvmtrace bench`` and ``benches/``;
:mod:`kvmtrace.bench` re-exports the public names).

* ``kvm_step.c``: the plain C ``KVM_RUN`` single-step loop kvmtrace is compared
  against (compiled with ``cc`` at benchmark time, see :mod:`.cbaseline`);
* :mod:`.guests`: the real-mode guests every contender runs;
* :mod:`.pyloop`: the same loop in pure Python (ctypes + fcntl.ioctl), speaking the
  KVM ABI of :mod:`.kvm_uapi` (ioctl numbers and struct layouts defined by hand);
* :mod:`.measure`: timed runs, interleaved rounds, paired ratios;
* :mod:`.dense`, :mod:`.sparse`: the single-step and breakpoint contenders and their checks;
* :mod:`.memory`: bytes per event and peak RSS of streamed runs (in a child process);
* :mod:`.analysis_throughput`: ``kvmtrace.analyze`` on synthetic traces;
* :mod:`.machine_info`, :mod:`.report`: the ``kvmtrace bench`` table and its context.

Private: the layout may change between releases.
"""
