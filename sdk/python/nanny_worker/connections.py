"""Balanced connections (PROTOCOL.md, section 12): ``Worker.incoming()``."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
import uuid
from socket import socket as Socket
from typing import TYPE_CHECKING, Any, AsyncIterator, Optional, Tuple, cast

from . import fdchannel, protocol
from .errors import NannyError

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Worker

#: Connections taken and not yet handed to the application.
CONNECTION_QUEUE = 128

_KINDS = {"Tcp": (socket.AF_INET, socket.AF_INET6), "Unix": (socket.AF_UNIX,)}


class AlreadyListening(NannyError):
    """``incoming()`` while another ``Incoming`` is open."""


class Connection:
    """A connection from one of the supervisor's listeners, now this worker's.

    ``socket`` is a blocking ``socket.socket``; ``open_streams()`` gives
    asyncio streams over it. ``close()`` (or ``async with``) closes it and
    tells the supervisor (``ConnectionClosed``); ``detach()`` hands the socket
    over and tells it the same."""

    def __init__(self, worker: "Worker", raw_id: bytes, attempt: int, listener: str, kind: str,
                 sock: socket.socket) -> None:
        self._worker = worker
        self._raw_id = raw_id
        #: The connection's id (the same for every offer of it).
        self.id = uuid.UUID(bytes=raw_id)
        #: The offer number.
        self.attempt = attempt
        #: The name of the listener that accepted it.
        self.listener = listener
        #: ``"Tcp"`` or ``"Unix"``.
        self.kind = kind
        self._sock: Optional[socket.socket] = sock
        self._writer: Optional[asyncio.StreamWriter] = None
        self._reported = False

    @property
    def socket(self) -> socket.socket:
        """The connection's socket (``ValueError`` once closed or detached)."""
        if self._sock is None:
            raise ValueError("the connection is closed or detached")
        return self._sock

    async def open_streams(self) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """asyncio streams over the socket; ``close()`` still ends them."""
        sock = self.socket
        sock.setblocking(False)
        reader, self._writer = await asyncio.open_connection(sock=sock)
        return reader, self._writer

    def detach(self) -> Socket:
        """Takes the socket out of the SDK's hands (reported closed to the supervisor)."""
        sock = self.socket
        self._sock = None
        self._report()
        return sock

    def close(self) -> None:
        """Closes the connection and reports it closed, once."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._report()

    def _report(self) -> None:
        if not self._reported:
            self._reported = True
            self._worker._send_quietly(protocol.variant("ConnectionClosed", id=self._raw_id))

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class Incoming:
    """The connections offered to this worker: ``async for conn in incoming``.

    Ends after ``Drain``, a soft or hard kill or the end of the link; ``close()``
    stops taking new ones (``Listening{on: false}``)."""

    def __init__(self, worker: "Worker") -> None:
        self._worker = worker
        self._queue: "asyncio.Queue[Optional[Connection]]" = asyncio.Queue()
        self.open = True
        self._relisten = False

    def __aiter__(self) -> AsyncIterator[Connection]:
        return self

    async def __anext__(self) -> Connection:
        if self._queue.empty() and not self.open:
            raise StopAsyncIteration
        conn = await self._queue.get()
        if conn is None:
            raise StopAsyncIteration
        if self._relisten and self.open:
            self._relisten = False
            self._worker._send_quietly(protocol.variant("Listening", on=True))
        return conn

    def close(self) -> None:
        """Stops taking connections; the ones taken and not handed out are closed."""
        if self._worker._incoming is self:
            self._worker._incoming = None
            self._worker._send_quietly(protocol.variant("Listening", on=False))
        self._end()
        while not self._queue.empty():
            conn = self._queue.get_nowait()
            if conn is not None:
                conn.close()

    def _end(self) -> None:
        if self.open:
            self.open = False
            self._queue.put_nowait(None)


class _Offers:
    """The connection half of ``Worker``."""

    if TYPE_CHECKING:  # pragma: no cover  (the rest of Worker)
        _fd_channel: Optional[socket.socket]
        _closed: bool

        def _send(self, message: Any) -> None: ...

    def _init_offers(self) -> None:
        self._incoming: Optional[Incoming] = None
        self._stopped_offers = False
        #: Set on ``Drain`` (or a stop): no new connections or requests come.
        self.draining = asyncio.Event()

    def incoming(self) -> Incoming:
        """Starts taking balanced connections (``Listening{on: true}``).
        Needs the fd channel; one ``Incoming`` at a time (``AlreadyListening``)."""
        if self._fd_channel is None:
            raise NannyError("no fd channel: this worker cannot take connections")
        if self._incoming is not None:
            raise AlreadyListening("an Incoming is open already")
        incoming = Incoming(cast("Worker", self))
        if self._stopped_offers:
            incoming._end()
            return incoming
        self._incoming = incoming
        self._send(protocol.variant("Listening", on=True))
        return incoming

    def _send_quietly(self, message: Any) -> None:
        if not self._closed:
            self._send(message)

    def _end_offers(self) -> None:
        self._stopped_offers = True
        self.draining.set()
        if self._incoming is not None:
            self._incoming._end()
            self._incoming = None

    def _on_offer(self, message: fdchannel.FdMessage) -> None:
        key = dict(id=message.id, attempt=message.attempt)
        incoming = self._incoming
        try:
            fields = protocol.unpack(message.data)
            listener, kind = fields["listener"], fields["kind"]
            sock = socket.socket(fileno=message.fd)
            if kind not in _KINDS or sock.family not in _KINDS[kind] or sock.type != socket.SOCK_STREAM:
                sock.detach()
                raise ValueError(f"an offer of kind {kind!r} that is a {sock.family.name} socket")
        except (ValueError, KeyError, TypeError, OSError) as e:
            print(f"nanny_worker: bounced a malformed connection offer: {e}", file=sys.stderr)
            self._bounce(message.fd, key, relisten=incoming is not None)
            return
        if incoming is None or incoming._queue.qsize() >= CONNECTION_QUEUE:
            sock.detach()
            self._bounce(message.fd, key, relisten=False)
            if incoming is not None:
                incoming._relisten = True
            return
        self._send(protocol.variant("ConnectionTaken", **key))  # before anyone reads it
        conn = Connection(cast("Worker", self), message.id, message.attempt, listener, kind, sock)
        if not _connected(sock):
            conn.close()  # its client is gone already
            return
        incoming._queue.put_nowait(conn)

    def _bounce(self, fd: int, key: "dict[str, Any]", relisten: bool) -> None:
        os.close(fd)
        self._send(protocol.variant("ConnectionBounced", **key))
        if relisten:
            self._send(protocol.variant("Listening", on=True))


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
        return True
    except OSError as e:
        return e.errno != errno.ENOTCONN
