"""The fd channel (PROTOCOL.md, section 11): descriptors on a seqpacket socket.

Every message is one descriptor in one ``SCM_RIGHTS`` control message and
21 to 4096 data bytes: a 16-byte request id, a big-endian ``u32`` attempt, a
kind byte, then (kinds 1, 3, 4) a MessagePack map.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import NamedTuple, Optional

#: The data bytes of the tag.
TAG_LEN = 21
#: The largest fd channel message (tag and data).
MAX_MESSAGE = 4096

#: Kind 1: an attachment, supervisor -> worker.
KIND_ATTACHMENT = 1
#: Kind 2: a response stream, worker -> supervisor.
KIND_RESPONSE_STREAM = 2
#: Kind 3: a balanced connection, supervisor -> worker.
KIND_CONNECTION = 3
#: Kind 4: a broadcast with a descriptor, supervisor -> worker.
KIND_BROADCAST = 4

_TAG = struct.Struct(">16sIB")


class FdMessage(NamedTuple):
    """One message of the channel: its tag, the data after it, its descriptor
    (owned by the receiver: close it when done)."""

    id: bytes
    attempt: int
    kind: int
    data: bytes
    fd: int


class Malformed(Exception):
    """A channel message the receiver must drop; its descriptors are closed."""


def encode_tag(request_id: bytes, attempt: int, kind: int) -> bytes:
    """The 21-byte tag: the UUID's 16 bytes, the attempt, the kind."""
    return _TAG.pack(request_id, attempt, kind)


def decode_message(data: bytes, fds: "list[int]", flags: int) -> FdMessage:
    """Checks one received message (11.1): at least a tag, no truncation,
    exactly one descriptor. Closes every descriptor of a malformed one."""
    problem = None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        problem = "a truncated fd channel message"
    elif len(fds) != 1:
        problem = f"an fd channel message with {len(fds)} descriptors"
    elif len(data) < TAG_LEN:
        problem = f"an fd channel message of {len(data)} bytes, shorter than its tag"
    if problem is not None:
        for fd in fds:
            _close(fd)
        raise Malformed(problem)
    request_id, attempt, kind = _TAG.unpack(data[:TAG_LEN])
    return FdMessage(request_id, attempt, kind, data[TAG_LEN:], fds[0])


def receive(sock: socket.socket) -> Optional[FdMessage]:
    """Reads one message from a non-blocking channel: None when nothing waits.

    Raises ``EOFError`` at end of file (or a reset), ``Malformed`` for a
    message to drop (the caller reads on)."""
    try:
        data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE, 1, socket.MSG_CMSG_CLOEXEC)
    except (BlockingIOError, InterruptedError):
        return None
    except ConnectionResetError:
        raise EOFError from None
    if not data and not fds:
        raise EOFError
    return decode_message(data, fds, flags)


async def send(sock: socket.socket, tag: bytes, fd: int) -> None:
    """Sends one descriptor with its tag on a non-blocking channel, waiting
    while the channel is full. Raises ``OSError`` (``EPIPE``: the peer is gone)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(sock, [tag], [fd], socket.MSG_NOSIGNAL)
            return
        except (BlockingIOError, InterruptedError):
            writable = loop.create_future()
            loop.add_writer(sock.fileno(), _wake, writable)
            try:
                await writable
            finally:
                loop.remove_writer(sock.fileno())


def _wake(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
