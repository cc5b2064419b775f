"""Refuse an allocation that cannot fit before making it, with an error that names the argument.

A raw ``MemoryError`` (or the kernel killing the process) tells a user nothing about which argument
was too large; :func:`check_fits` compares an estimate with the memory this process may use.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["check_fits", "memory_limit"]


def memory_limit() -> int:
    """Bytes this process may allocate at most: physical memory, or a lower ``setrlimit`` cap."""
    limits = []
    with contextlib.suppress(ValueError, OSError, AttributeError):  # no sysconf: not POSIX
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        resource = None  # type: ignore[assignment]
    if resource is not None:
        for which in ("RLIMIT_AS", "RLIMIT_DATA"):
            soft = resource.getrlimit(getattr(resource, which))[0] if hasattr(resource, which) else -1
            if soft not in (-1, resource.RLIM_INFINITY):
                limits.append(soft)
    return min(limits) if limits else 1 << 62


def check_fits(nbytes: int, what: str, fix: str) -> None:
    """Raise ``ValueError`` if ``nbytes`` (for ``what``) exceed :func:`memory_limit`; ``fix`` says what to change."""
    limit = memory_limit()
    if nbytes > limit:
        raise ValueError(f"{what} would need {_human(nbytes)}, more than the {_human(limit)} this process "
                         f"may use; {fix}")


def _human(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
