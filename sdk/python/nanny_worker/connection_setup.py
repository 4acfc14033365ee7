"""``connect()``: the hello exchange (PROTOCOL.md, sections 1 and 5)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Dict, List, Optional

from . import protocol
from .env import Env, host_pid
from .errors import Disconnected, VersionMismatch
from .protocol import PROTOCOL_VERSION, ProtocolError
from .worker import AGENT, Worker


def _open_channel(fd: Optional[int]) -> Optional[socket.socket]:
    if fd is None:
        return None
    channel = socket.socket(fileno=fd)
    channel.set_inheritable(False)
    if channel.type != socket.SOCK_SEQPACKET:
        channel.close()
        raise ProtocolError("NANNY_FD_CHANNEL is not a SOCK_SEQPACKET socket")
    channel.setblocking(False)
    return channel


def capabilities(fd_channel: bool) -> List[str]:
    """What this SDK declares in its hello (section 10)."""
    return (["fd-channel", "connections"] if fd_channel else []) + ["messaging", "exit"]


async def _read_hello(reader: asyncio.StreamReader, max_frame_len: int) -> Dict[str, Any]:
    try:
        length = protocol.read_length(await reader.readexactly(4), max_frame_len)
        frame = protocol.decode_to_worker(await reader.readexactly(length))
    except asyncio.IncompleteReadError:
        raise Disconnected("the supervisor closed the link before its hello") from None
    if frame.name != "Hello":
        raise ProtocolError(f"the supervisor's first frame is {frame.name}, not a hello")
    return frame.fields


def check_hello(hello: Dict[str, Any], worker_id: int) -> None:
    """The version range and the worker id of the supervisor's hello."""
    newest = hello["version"]
    oldest = hello.get("min_version", newest)
    if not oldest <= PROTOCOL_VERSION <= newest:
        raise VersionMismatch(
            f"the supervisor speaks versions {oldest}..={newest}, this SDK {PROTOCOL_VERSION}"
        )
    if hello["worker_id"] != worker_id:
        raise ProtocolError(f"the hello names worker {hello['worker_id']}, NANNY_WORKER_ID {worker_id}")
    if hello["max_frame_len"] < 1024 or hello["pulse_ms"] < 1:
        raise ProtocolError("a hello with max_frame_len below 1024 or pulse_ms 0")


async def connect() -> Worker:
    """Connects to the supervisor that started this process: sends the hello,
    checks the supervisor's, starts heartbeats. Then register handlers and
    call ``ready()``.

    Raises ``NotAWorker`` outside nanny, ``VersionMismatch``, ``ProtocolError``
    or ``Disconnected``."""
    env = Env.read()
    sock = socket.socket(fileno=env.fd)
    sock.set_inheritable(False)  # FD_CLOEXEC: not for our children
    sock.setblocking(False)
    channel = _open_channel(env.fd_channel)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    hello = protocol.variant(
        "Hello",
        version=PROTOCOL_VERSION,
        pid=host_pid(),
        agent=AGENT,
        capabilities=capabilities(channel is not None),
    )
    writer.write(protocol.encode_frame(hello))
    started = time.monotonic()
    try:
        theirs = await _read_hello(reader, env.max_frame_len)
        check_hello(theirs, env.worker_id)
    except BaseException:
        writer.close()
        if channel is not None:
            channel.close()
        raise
    return Worker(env, reader, writer, channel, theirs, started)
