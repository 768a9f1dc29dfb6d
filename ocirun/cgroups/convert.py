"""Pure conversions between v1 values in ``linux.resources`` and what cgroup v2 files take.

The formulas are the ones runc and crun use (and the OCI "cgroup v2 conversion" note they follow):

    cpu.shares [2, 262144]       → cpu.weight [1, 10000]:  1 + ((shares - 2) * 9999) / 262142
    blkio.weight [10, 1000]      → io.weight [1, 10000]:   1 + ((weight - 10) * 9999) / 990
                                   io.bfq.weight [1, 1000] takes the blkio weight unchanged
    memory.memsw (memory+swap)   → memory.swap.max:        swap - limit
"""
from __future__ import annotations


from ..errors import CgroupError


def shares_to_weight(shares: int) -> int:
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """Inverse of :func:`shares_to_weight` (used to report a v2 weight as shares)."""
    if weight == 0:
        return 0
    return 2 - (-((weight - 1) * 262142) // 9999)   # the smallest shares with that weight


def blkio_weight_to_io_weight(weight: int) -> int:
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def io_weight_to_blkio_weight(weight: int) -> int:
    if weight == 0:
        return 0
    return 10 - (-((weight - 1) * 990) // 9999)


def memory_swap_to_v2(swap: int, limit: int) -> int:
    """v1 memory+swap → v2 swap only.  0 = unset, -1 = max (runc's ConvertMemorySwapToCgroupV2Value)."""
    if limit == -1 and swap == 0:
        return -1   # "unlimited memory" with no explicit swap: swap unlimited too, as on v1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise CgroupError("unable to set swap limit without memory limit")
    if limit < 0:
        raise CgroupError(f"invalid memory value: {limit}")
    if swap < limit:
        raise CgroupError("memory+swap limit should be >= memory limit")
    return swap - limit


def limit_str(v: int) -> str:
    """-1 (and any negative) → ``max``, else the decimal number."""
    return "max" if v < 0 else str(v)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}


def page_size_bytes(page_size: str) -> int:
    """``2MB`` → 2097152 (base 1024, as the spec says)."""
    text = page_size or ""
    number, unit = text[:-1], ""
    if number and number[-1] in "KMGTPE":
        number, unit = number[:-1], number[-1]
    if not text.endswith("B") or not number.isdigit() or not number.isascii():
        raise CgroupError(f"invalid hugepage size {page_size!r}: expected <size><unit>B such as 2MB or 1GB")
    return int(number) * _UNITS[unit]


def page_size_name(size: int) -> str:
    """2097152 → ``2MB``: the spelling the hugetlb control files use."""
    for unit in ("G", "M", "K"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}B"
    return f"{size}B"
