"""Heartbeats (PROTOCOL.md, section 9), sent from the event loop itself."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from typing import TYPE_CHECKING, Dict

from . import protocol
from .errors import Disconnected

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Worker

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size: field 2 of ``/proc/self/statm`` x page size; 0 if unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def runtime_memory() -> Dict[str, int]:
    """The interpreter's cheap memory figures: ``allocated_blocks`` (blocks
    the allocator holds, ``sys.getallocatedblocks()``), ``gc_tracked`` (objects
    waiting in the collector's generations, ``sum(gc.get_count())``) and
    ``gc_collections`` (collections run so far)."""
    return {
        "allocated_blocks": sys.getallocatedblocks(),
        "gc_tracked": sum(gc.get_count()),
        "gc_collections": sum(s.get("collections", 0) for s in gc.get_stats()),
    }


async def heartbeats(worker: "Worker") -> None:
    """Sends a ``Heartbeat`` every ``pulse_ms`` until cancelled or the link
    closes. ``lag_us`` is how late this loop's timer fired: a blocked loop
    shows here, and past ``unhealthy_timeout_ms`` the supervisor stops it."""
    loop = asyncio.get_running_loop()
    pulse = worker.pulse_ms / 1000
    started = worker._started  # uptime counts from the hello
    due = loop.time()
    while True:
        due += pulse
        await asyncio.sleep(max(0.0, due - loop.time()))
        now = loop.time()
        lag = max(0.0, now - due)
        if lag > pulse:
            due = now  # a long block: the next beat is one pulse from now
        beat = protocol.variant(
            "Heartbeat",
            rss_bytes=rss_bytes(),
            in_flight=worker._in_flight(),
            lag_us=int(lag * 1e6),
            uptime_ms=int((time.monotonic() - started) * 1000),
            served=worker._served,
            runtime_memory=runtime_memory(),
        )
        try:
            worker._send(beat)
        except Disconnected:
            return
