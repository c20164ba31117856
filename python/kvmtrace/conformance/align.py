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
    """Between two matched pairs, pair the missing items with the unmatched exits, in order.

    An exit in the place of the expected one (a wrong pc, a HLT, an internal error or
    an exception the guest took instead of the debug exit) reads better as one
    mismatch, "expected X, observed Y", than as a missing exit plus an unexpected one;
    the first missing item gets the first unmatched exit.
    """
    out: list[tuple[int | None, int | None]] = []
    k = 0
    while k < len(pairs):
        if pairs[k][0] is not None and pairs[k][1] is not None:
            out.append(pairs[k])
            k += 1
            continue
        block_end = k
        while block_end < len(pairs) and (pairs[block_end][0] is None or pairs[block_end][1] is None):
            block_end += 1
        items = [i for i, _ in pairs[k:block_end] if i is not None]
        extra = [j for _, j in pairs[k:block_end] if j is not None]
        n = min(len(items), len(extra))
        out += list(zip(items[:n], extra[:n]))
        out += [(i, None) for i in items[n:]] + [(None, j) for j in extra[n:]]
        k = block_end
    return out
