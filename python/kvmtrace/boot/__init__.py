"""Booting real kernels on a Machine: Linux (bzImage or vmlinux, with symbols from
the ELF, a System.map or the image's kallsyms) and Multiboot v1, and the
``kvmtrace boot`` command (``kvmtrace.boot.cli``)."""

from kvmtrace.boot.kallsyms import KallsymsEntry, find_kallsyms
from kvmtrace.boot.linux import KernelProgram, default_cmdline, load_linux
from kvmtrace.boot.multiboot import load_multiboot
from kvmtrace.boot.symbols import kernel_symbols, parse_system_map

__all__ = [
    "KallsymsEntry",
    "KernelProgram",
    "default_cmdline",
    "find_kallsyms",
    "kernel_symbols",
    "load_linux",
    "load_multiboot",
    "parse_system_map",
]
