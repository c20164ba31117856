"""Aligning the exits a guest produced with the ones a scenario expects."""

from __future__ import annotations

from collections.abc import Sequence

from kvmtrace.conformance.model import Expect, Observation


def same_event(e: Expect, o: Observation) -> bool:
    """Whether ``o`` is the exit ``e`` describes (its other fields may still differ)."""
    in_range = e.pc_in is None or (o.pc is not None and e.pc_in[0] <= o.pc < e.pc_in[1])
    return (e.reason == o.reason and (e.pc is None or e.pc == o.pc) and in_range
            and (e.port is None or e.port == o.port) and (e.addr is None or e.addr == o.addr))


def align(expected: Sequence[Expect], observed: Sequence[Observation]) -> list[tuple[int | None, int | None]]:
    """Longest-common-subsequence alignment: (item index or None, observation index or None), in order."""
    n, m = len(expected), len(observed)
    lcs = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            lcs[i][j] = (lcs[i + 1][j + 1] + 1 if same_event(expected[i], observed[j])
                         else max(lcs[i + 1][j], lcs[i][j + 1]))
    out: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < n and j < m:
        if same_event(expected[i], observed[j]) and lcs[i][j] == lcs[i + 1][j + 1] + 1:
            out.append((i, j))
            i, j = i + 1, j + 1
        elif lcs[i + 1][j] >= lcs[i][j + 1]:
            out.append((i, None))
            i += 1
        else:
            out.append((None, j))
            j += 1
    out += [(k, None) for k in range(i, n)] + [(None, k) for k in range(j, m)]
    return pair_leftovers(out, expected, observed)


def pair_leftovers(pairs: list[tuple[int | None, int | None]], expected: Sequence[Expect],
                    observed: Sequence[Observation]) -> list[tuple[int | None, int | None]]:
    """Pair a missing item with an unmatched exit right next to it.

    An exit in the place of the expected one (a wrong pc, a HLT or an internal
    error instead of the debug exit) reads better as one mismatch, "expected X,
    observed Y", than as a missing exit plus an unexpected one.
    """
    out: list[tuple[int | None, int | None]] = []
    k = 0
    while k < len(pairs):
        a = pairs[k]
        b = pairs[k + 1] if k + 1 < len(pairs) else None
        if b is not None and a[1] is None and b[0] is None:
            out.append((a[0], b[1]))
            k += 2
        elif b is not None and a[0] is None and b[1] is None:
            out.append((b[0], a[1]))
            k += 2
        else:
            out.append(a)
            k += 1
    return out
