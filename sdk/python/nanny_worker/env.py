"""The environment nanny starts a worker with (PROTOCOL.md, section 1)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from .errors import NotAWorker


def is_worker() -> bool:
    """Whether this process was started by nanny as a worker (``NANNY_FD`` is set)."""
    return "NANNY_FD" in os.environ


def host_pid() -> int:
    """This process's pid as the host sees it: the link ``/proc/self``
    (``getpid()`` is 2 in nanny's PID namespace); ``getpid()`` without /proc."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


@dataclass(frozen=True)
class Env:
    """The ``NANNY_*`` variables, read once."""

    fd: int
    worker_id: int
    pool: str
    name: Optional[str]
    logical_id: int
    supervisor_pid: int
    max_frame_len: int
    fd_channel: Optional[int]

    @classmethod
    def read(cls, environ: Mapping[str, str] = os.environ) -> "Env":
        """Reads them; ``NotAWorker`` without ``NANNY_FD``, ``ValueError`` for
        a number that does not parse."""
        if "NANNY_FD" not in environ:
            raise NotAWorker("NANNY_FD is not set: this process was not started by nanny")

        def number(key: str, default: int = 0) -> int:
            value = environ.get(key)
            return default if value is None else int(value)

        channel = environ.get("NANNY_FD_CHANNEL")
        return cls(
            fd=number("NANNY_FD"),
            worker_id=number("NANNY_WORKER_ID"),
            pool=environ.get("NANNY_POOL", ""),
            name=environ.get("NANNY_WORKER_NAME"),
            logical_id=number("PROCESS_LOGICAL_ID"),
            supervisor_pid=number("NANNY_SUPERVISOR_PID"),
            max_frame_len=number("NANNY_MAX_FRAME_LEN", 8 * 1024 * 1024),
            fd_channel=None if channel is None else int(channel),
        )
