"""One request attempt, as a handler sees it (``Request``)."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from . import protocol
from .chunks import ChunkReader, Source
from .errors import AlreadyAnswered, AttachmentError, PayloadTooLarge

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Worker

#: Error kinds the SDK answers with (PROTOCOL.md, section 4).
KIND_HANDLER = "handler"
KIND_OVERSIZE = "oversize"
KIND_ENCODE = "encode"
KIND_ATTACHMENT = "attachment"


class RequestInfo(NamedTuple):
    """An attempt in flight (``Worker.requests()``)."""

    id: uuid.UUID
    attempt: int
    created_at_ms: int
    attachment: Optional[str]


class Request:
    """One attempt of a request. Answer it exactly once: return the answer
    from the handler, or call ``respond`` / ``fail`` / ``respond_stream``."""

    def __init__(self, worker: "Worker", fields: "dict[str, Any]", fd: Optional[int]) -> None:
        self._worker = worker
        self._raw_id: bytes = fields["id"]
        #: The request's id (the same for every attempt).
        self.id = uuid.UUID(bytes=self._raw_id)
        #: The attempt number: 1, then higher on each retry.
        self.attempt: int = fields["attempt"]
        #: When the request was first enqueued, ms since the epoch (supervisor clock).
        self.created_at_ms: int = fields["created_at_ms"]
        #: The raw payload (MessagePack from the Rust API).
        self.raw_data: bytes = fields["payload"]
        #: ``"Tcp"``, ``"Unix"``, ``"Fd"``, ``"Stream"`` or None.
        self.attachment_kind: Optional[str] = fields.get("attachment")
        #: Set when the supervisor cancels this attempt (the handler task is
        #: cancelled right after).
        self.cancelled = asyncio.Event()
        self._fd = fd
        self._accepted = False
        self._answered = False
        self._sent = False
        self._acked = False

    @property
    def key(self) -> "tuple[bytes, int]":
        """``(id bytes, attempt)``: this attempt's key on the wire."""
        return (self._raw_id, self.attempt)

    @property
    def created_at(self) -> datetime.datetime:
        """``created_at_ms`` as an aware UTC datetime."""
        return datetime.datetime.fromtimestamp(self.created_at_ms / 1000, datetime.timezone.utc)

    @property
    def data(self) -> Any:
        """The payload decoded as MessagePack (raises ``ValueError`` if it is not)."""
        return protocol.unpack(self.raw_data)

    @property
    def answered(self) -> bool:
        """Whether this attempt has its answer."""
        return self._answered

    @property
    def worker(self) -> "Worker":
        """The worker this request came to."""
        return self._worker

    def info(self) -> RequestInfo:
        """This attempt as ``Worker.requests()`` lists it."""
        return RequestInfo(self.id, self.attempt, self.created_at_ms, self.attachment_kind)

    # --- answers ----------------------------------------------------------

    def respond(self, value: Any) -> None:
        """Answers ``Ok`` with ``value`` encoded as MessagePack.

        An answer above ``max_payload_len`` is answered with an ``oversize``
        error instead, and ``PayloadTooLarge`` is raised."""
        try:
            body = protocol.pack(value)
        except (TypeError, ValueError, OverflowError) as e:
            self.fail(KIND_ENCODE, f"the answer cannot be encoded: {e}")
            raise
        self.respond_bytes(body)

    def respond_bytes(self, body: bytes) -> None:
        """Answers ``Ok`` with a payload as it is (already encoded)."""
        limit = self._worker.max_payload_len
        if len(body) > limit:
            self.fail(KIND_OVERSIZE, f"an answer of {len(body)} bytes, above the limit of {limit}")
            raise PayloadTooLarge(f"an answer of {len(body)} bytes, above {limit}")
        self._answer({"Ok": bytes(body)})

    def fail(self, kind: str, message: str) -> None:
        """Answers ``Err{kind, message}``: the caller gets it as is, never retried."""
        self._answer({"Err": {"kind": kind, "message": message}})

    def ack(self) -> None:
        """Tells the supervisor the request was taken (informational, once)."""
        if self._acked or self._answered or self.cancelled.is_set():
            return
        self._acked = True
        self._accept()
        self._worker._send(protocol.variant("Ack", id=self._raw_id, attempt=self.attempt))

    def respond_stream(self, value: Any, source: Source) -> None:
        """Answers ``Ok`` with ``value`` and a byte stream the caller reads as
        it is produced: ``source`` is bytes or a (sync or async) iterable of
        bytes. Needs the fd channel (``AttachmentError`` without it). The
        stream is written in a task of its own; a soft kill waits for it."""
        channel = self._worker._fd_channel
        if channel is None:
            raise AttachmentError("no fd channel: a response stream cannot be sent")
        body = protocol.pack(value)
        if len(body) > self._worker.max_payload_len:
            self.fail(KIND_OVERSIZE, f"an answer of {len(body)} bytes, above the limit")
            raise PayloadTooLarge(f"an answer of {len(body)} bytes")
        self._claim_answer()
        self._worker._start_response_stream(self, body, source)

    def _claim_answer(self) -> None:
        if self._answered:
            raise AlreadyAnswered(f"attempt {self.id}#{self.attempt} is answered already")
        self._answered = True

    def _answer(self, outcome: "dict[str, Any]") -> None:
        self._claim_answer()
        if self.cancelled.is_set():
            return  # nobody waits for it: no answer
        self._send_response(outcome, stream=False)

    def _send_response(self, outcome: "dict[str, Any]", stream: bool) -> None:
        self._sent = True
        self._accept()
        self._worker._send(
            protocol.variant(
                "Response",
                id=self._raw_id,
                attempt=self.attempt,
                outcome=outcome,
                stream=True if stream else None,
            )
        )
        self._worker._finished(self, served=True)

    # --- attachments -------------------------------------------------------

    def _accept(self) -> None:
        if self.attachment_kind is not None and not self._accepted:
            self._accepted = True
            self._worker._send(protocol.variant("Accepted", id=self._raw_id, attempt=self.attempt))

    def _take_fd(self) -> Optional[int]:
        if self._fd is None or self.cancelled.is_set() or self._answered:
            return None
        fd, self._fd = self._fd, None
        self._accept()
        return fd

    @property
    def socket(self) -> Optional[socket.socket]:
        """The attached connection (``"Tcp"``, ``"Unix"``) as a blocking
        ``socket.socket``, now the handler's; None without one, once taken,
        or once the attempt is cancelled. Taking it sends ``Accepted``."""
        if self.attachment_kind not in ("Tcp", "Unix"):
            return None
        fd = self._take_fd()
        return None if fd is None else socket.socket(fileno=fd)

    @property
    def fd(self) -> Optional[int]:
        """The attached descriptor of any kind, now the handler's to close;
        None as for ``socket``. Taking it sends ``Accepted``."""
        return self._take_fd()

    @property
    def stream(self) -> Optional[ChunkReader]:
        """The ``"Stream"`` attachment as a ``ChunkReader``; None as for
        ``socket``. Taking it sends ``Accepted`` (the supervisor then writes)."""
        if self.attachment_kind != "Stream":
            return None
        fd = self._take_fd()
        return None if fd is None else ChunkReader(socket.socket(fileno=fd))

    def _close_attachment(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def __repr__(self) -> str:
        return f"<Request {self.id}#{self.attempt}>"
