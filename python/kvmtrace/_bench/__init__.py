"""Benchmark support shipped with kvmtrace (used by ``kvmtrace bench`` and ``benches/``).

* ``kvm_step.c``: the plain C ``KVM_RUN`` single-step loop kvmtrace is compared
  against (compiled with ``cc`` at benchmark time, see :mod:`.cbaseline`);
* :mod:`.guests`: the real-mode guests every contender runs;
* :mod:`.pyloop`: the same loop in pure Python (ctypes + fcntl.ioctl).

Private: the layout may change between releases.
"""
