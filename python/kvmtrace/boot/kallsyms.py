"""The kernel's own symbol table (kallsyms), read from a vmlinux image.

A kernel built with CONFIG_KALLSYMS carries its symbols in .rodata so it can print
symbolised call traces: compressed names (``kallsyms_names``, every name a list of
indices into ``kallsyms_token_table``), a marker every 256 names, and addresses as
32-bit offsets from ``kallsyms_relative_base``. The tables have no ELF symbols of
their own in a stripped image, so they are found by their shape: the token table
holds the single-character tokens "0".."9" back to back, and every other table sits
at a fixed place around it (scripts/kallsyms.c writes them in one of two orders,
before and after Linux 6.2, both handled). Nothing here executes guest code.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from kvmtrace.exceptions import ProgramError

_DIGITS = b"".join(bytes([c]) + b"\0" for c in b"0123456789")
_TOKENS = 256
_PER_MARKER = 256
#: nm type letters that mark code.
_TEXT_TYPES = frozenset("tTwW")


@dataclass(frozen=True)
class KallsymsEntry:
    name: str
    addr: int
    type: str  # nm's letter: T/t code, D/d data, R/r read-only, B/b bss, ...

    @property
    def kind(self) -> str:
        return "func" if self.type in _TEXT_TYPES else "object"


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from("<I", data, at)[0]


def _align(x: int, a: int) -> int:
    return (x + a - 1) & -a


def _token_table(data: bytes, digits_at: int) -> tuple[int, int, list[bytes]] | None:
    """(start, end, tokens) of a token table whose "0" token is at ``digits_at``."""
    start = digits_at
    for _ in range(ord("0")):  # walk back over tokens 0x2f .. 0x00, none empty
        prev = data.rfind(b"\0", 0, start - 1)
        if start < 2 or data[start - 1] != 0 or prev == start - 2:
            return None
        start = prev + 1
    tokens, at = [], start
    for _ in range(_TOKENS):
        end = data.find(b"\0", at)
        if end <= at:  # tokens are never empty
            return None
        tokens.append(data[at:end])
        at = end + 1
    return start, at, tokens


def _token_index(data: bytes, table: int, end: int, tokens: list[bytes]) -> int | None:
    offsets, off = [], 0
    for t in tokens:
        offsets.append(off)
        off += len(t) + 1
    packed = struct.pack(f"<{_TOKENS}H", *offsets)
    for a in (4, 8, 16):
        at = _align(end, a)
        if data[at:at + len(packed)] == packed:
            return at
    return None


def _markers(data: bytes, table: int) -> tuple[int, list[int]] | None:
    """(start, markers): the u32 offsets of every 256th name, 0 first, increasing by
    at most a few KiB each, that end before the token table (right before it, or
    before the 3-byte-per-symbol ``kallsyms_seqs_of_names`` of Linux 6.2/6.3)."""
    first = max(0, table - (8 << 20)) & ~3
    arr = np.frombuffer(data, dtype="<u4", count=(table - first) // 4, offset=first).astype(np.int64)
    if arr.size < 3:
        return None
    step = np.diff(arr)
    ok = (step > 0) & (step < 0x10000)
    for i in np.nonzero(arr[:-1] == 0)[0][::-1].tolist():
        if not ok[i]:
            continue
        j = i
        while j < ok.size and ok[j]:
            j += 1
        count = j - i + 1
        end = first + 4 * (i + count)
        if table - end <= 3 * count * _PER_MARKER + 64:
            return first + 4 * i, arr[i:i + count].tolist()
    return None


def _entry_len(data: bytes, at: int) -> tuple[int, int]:
    """(header bytes, token count) of the name entry at ``at`` (big names: 2-byte length)."""
    n = data[at]
    if n & 0x80:
        return 2, (n & 0x7F) | (data[at + 1] << 7)
    return 1, n


def _names_start(data: bytes, markers_at: int, markers: list[int]) -> tuple[int, int] | None:
    """(names start, num_syms): num_syms is a u32 just before the names."""
    lo, hi = (len(markers) - 1) * _PER_MARKER, len(markers) * _PER_MARKER
    span = markers[-1] + _PER_MARKER * 260 + 64
    first = max(0, (markers_at - span) & ~3)
    window = np.frombuffer(data, dtype="<u4", count=(markers_at - first) // 4, offset=first)
    for idx in np.nonzero((window > lo) & (window <= hi))[0][::-1].tolist():
        num_at = first + 4 * idx
        for names in (num_at + 4, _align(num_at + 4, 8)):
            if _names_fit(data, names, int(window[idx]), markers, markers_at):
                return names, int(window[idx])
    return None


def _names_fit(data: bytes, names: int, count: int, markers: list[int], limit: int) -> bool:
    at = names
    for k in range(count):
        if k % _PER_MARKER == 0 and at - names != markers[k // _PER_MARKER]:
            return False
        if at >= limit:
            return False
        h, n = _entry_len(data, at)
        at += h + n
    return at <= limit and limit - at < 16


def _addresses(data: bytes, offsets_at: int, base: int, count: int) -> np.ndarray:
    offs = np.frombuffer(data, dtype="<i4", count=count, offset=offsets_at).astype(np.int64)
    # The same 64 bits as int64: a uint64 mixed with the int64 offsets would promote to float64.
    signed_base = np.uint64(base).astype(np.int64)
    if (offs < 0).any():
        # CONFIG_KALLSYMS_ABSOLUTE_PERCPU: per-CPU symbols absolute, the rest negative
        # offsets from relative_base - 1.
        addrs = np.where(offs >= 0, offs, signed_base - 1 - offs)
    else:
        addrs = signed_base + offs
    return addrs.astype(np.uint64)


def _kernel_base(v: int) -> bool:
    return v >> 31 == 0x1_FFFF_FFFF  # the kernel's top 2 GiB (0xffffffff80000000...)


def _offsets(data: bytes, count: int, num_at: int, index_end: int, new_order: bool) -> tuple[int, int] | None:
    """(offsets position, relative base), in either table order."""
    # Linux >= 6.4: offsets and relative_base after the token index.
    for a in ((8, 4) if new_order else ()):
        offs = _align(index_end, a)
        base_at = _align(offs + 4 * count, 8)
        if base_at + 8 <= len(data):
            base = struct.unpack_from("<Q", data, base_at)[0]
            if _kernel_base(base):
                return offs, base
    # Older: offsets, relative_base, num_syms, names...
    for base_at in (num_at - 8, (num_at - 8) & ~7, num_at - 16):
        if base_at < 4 * count:
            continue
        base = struct.unpack_from("<Q", data, base_at)[0]
        if _kernel_base(base):
            # The offsets label is 8-aligned (scripts/kallsyms.c ALGN on 64-bit):
            # padding, if any, is between the offsets and relative_base.
            return (base_at - 4 * count) & ~7, base
    return None


def find_kallsyms(data: bytes) -> list[KallsymsEntry]:
    """Every symbol of the kallsyms tables in ``data`` (a vmlinux), in table order.

    Raises ProgramError when the image has no kallsyms tables (CONFIG_KALLSYMS off).
    """
    at = data.find(_DIGITS)
    while at >= 0:
        found = _decode_at(data, at)
        if found is not None:
            return found
        at = data.find(_DIGITS, at + 1)
    raise ProgramError(
        "the kernel image has no kallsyms tables (built without CONFIG_KALLSYMS?); "
        "give its System.map (system_map=...) or a vmlinux with a symbol table"
    )


def _decode_at(data: bytes, digits_at: int) -> list[KallsymsEntry] | None:
    table = _token_table(data, digits_at)
    if table is None:
        return None
    start, end, tokens = table
    index = _token_index(data, start, end, tokens)
    markers = _markers(data, start) if index is not None else None
    if index is None or markers is None:
        return None
    names = _names_start(data, *markers)
    if names is None:
        return None
    names_at, count = names
    # Before 6.4 the names' sequence table sits between the markers and the tokens.
    new_order = start - (markers[0] + 4 * len(markers[1])) < 3 * count
    where = _offsets(data, count, names_at - 4, index + 2 * _TOKENS, new_order)
    if where is None:
        return None
    addrs = _addresses(data, where[0], where[1], count).tolist()
    out, pos = [], names_at
    lookup = tokens.__getitem__
    for k in range(count):
        h, n = _entry_len(data, pos)
        text = b"".join(map(lookup, data[pos + h:pos + h + n])).decode("ascii", "replace")
        pos += h + n
        if text:
            out.append(KallsymsEntry(text[1:], addrs[k], text[0]))
    return out
