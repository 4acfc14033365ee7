"""Values handed to handlers: broadcasts, messages, cluster views, targets."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from . import protocol


class Event:
    """A broadcast from the supervisor (``Worker.on_broadcast``).

    A broadcast that came on the fd channel (kind 4) carries a descriptor:
    ``fd`` borrows it while the handlers run; ``dup_fd()`` / ``socket()``
    give a handler a copy of its own to keep."""

    def __init__(self, name: str, raw: bytes, fd: Optional[int] = None) -> None:
        #: The event's name.
        self.name = name
        #: The payload as it came (MessagePack from the Rust API).
        self.raw = raw
        self._fd = fd

    @property
    def data(self) -> Any:
        """The payload decoded as MessagePack (``ValueError`` if it is not)."""
        return protocol.unpack(self.raw)

    @property
    def fd(self) -> Optional[int]:
        """The broadcast's descriptor, borrowed (closed after the handlers)."""
        return self._fd

    def dup_fd(self) -> Optional[int]:
        """A close-on-exec copy of the descriptor, the caller's to close."""
        return None if self._fd is None else os.dup(self._fd)

    def socket(self) -> Optional[socket.socket]:
        """A copy of the descriptor as a ``socket.socket`` (e.g. a listening one)."""
        fd = self.dup_fd()
        return None if fd is None else socket.socket(fileno=fd)

    def __repr__(self) -> str:
        return f"<Event {self.name!r}{' with a descriptor' if self._fd is not None else ''}>"


@dataclass(frozen=True)
class MessageMeta:
    """The sender of a message, as the supervisor knows it."""

    id: int
    name: str
    pid: int
    pool: str


@dataclass(frozen=True)
class Message:
    """A message from another worker (section 14)."""

    #: ``"public"``, ``"group"``, ``"private"`` or ``"confirmation"``.
    kind: str
    meta: MessageMeta
    #: The sender's bytes (MessagePack from every nanny SDK).
    raw: bytes

    @property
    def data(self) -> Any:
        """The message decoded as MessagePack."""
        return protocol.unpack(self.raw)


@dataclass(frozen=True)
class WorkerRef:
    """A live worker process in ``ClusterInfo``."""

    id: int
    name: str
    pid: int


@dataclass(frozen=True)
class PoolInfo:
    """A pool and its live worker processes."""

    name: str
    workers: List[WorkerRef] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterInfo:
    """The supervisor's pools, in configuration order (``Worker.cluster_info``)."""

    supervisor_pid: int
    pools: List[PoolInfo]

    @classmethod
    def from_wire(cls, value: Any) -> "ClusterInfo":
        """Reads the ``ClusterInfo`` answer's map (``ValueError`` if malformed)."""
        try:
            pools = [
                PoolInfo(p["name"], [WorkerRef(w["id"], w["name"], w["pid"]) for w in p["workers"]])
                for p in value["pools"]
            ]
            return cls(value["supervisor_pid"], pools)
        except (KeyError, TypeError) as e:
            raise ValueError(f"a malformed ClusterInfo answer: {e}") from None


@dataclass(frozen=True)
class SpawnedWorker:
    """A worker ``Worker.spawn_workers`` started."""

    id: int
    name: str


@dataclass(frozen=True)
class Target:
    """Whom a kill (or a private message) is for: build it with ``Target.pid``,
    ``Target.id`` or ``Target.name``."""

    variant: str
    value: Union[int, str]

    @classmethod
    def pid(cls, pid: int) -> "Target":
        """A worker (or the supervisor) by host pid; kills only."""
        return cls("Pid", pid)

    @classmethod
    def id(cls, worker_id: int) -> "Target":
        """A worker by id (``NANNY_WORKER_ID``)."""
        return cls("Id", worker_id)

    @classmethod
    def name(cls, name: str) -> "Target":
        """The worker that holds the slot ``pool:NN`` now."""
        return cls("Name", name)

    def wire(self) -> Dict[str, Union[int, str]]:
        """The externally tagged map, e.g. ``{"Name": "api:02"}``."""
        return {self.variant: self.value}
