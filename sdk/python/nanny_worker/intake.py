"""Requests: frames and descriptors in, handler tasks, exactly one answer each."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import traceback
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Awaitable, cast, Callable, Dict, List, Optional, Set, Tuple, Union

from . import chunks, fdchannel, protocol
from .errors import Disconnected, PayloadTooLarge, RemoteError
from .request import KIND_ATTACHMENT, KIND_HANDLER, Request, RequestInfo

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Worker

Key = Tuple[bytes, int]
Handler = Callable[[Request], Union[Any, Awaitable[Any]]]

#: Unmatched halves (frames or descriptors) and remembered cancels kept.
TABLE_LIMIT = 1024

_SOCKET_KINDS = {
    "Tcp": ((socket.AF_INET, socket.AF_INET6), socket.SOCK_STREAM),
    "Unix": ((socket.AF_UNIX,), socket.SOCK_STREAM),
    "Stream": ((socket.AF_UNIX,), socket.SOCK_STREAM),
}


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def attachment_problem(kind: str, fd: int) -> Optional[str]:
    """Why ``fd`` is not what ``kind`` says (11.2), or None."""
    if kind not in _SOCKET_KINDS:
        return None
    families, sock_type = _SOCKET_KINDS[kind]
    try:
        probe = socket.socket(fileno=os.dup(fd))
    except OSError as e:
        return f"a {kind} attachment that is no socket ({e.strerror})"
    try:
        if probe.family not in families or probe.type != sock_type:
            return f"a {kind} attachment that is a {probe.family.name} {probe.type.name} socket"
        return None
    finally:
        probe.close()


class _Intake:
    """The request half of ``Worker``."""

    if TYPE_CHECKING:  # pragma: no cover  (the rest of Worker)
        _fd_channel: Optional[socket.socket]
        _closed: bool
        max_payload_len: int

        def _send(self, message: Any) -> None: ...

    def _init_intake(self) -> None:
        self._handler: Optional[Handler] = None
        self._requests: Dict[Key, Request] = {}
        self._tasks: Dict[Key, "asyncio.Task[None]"] = {}
        self._streams: Set["asyncio.Task[None]"] = set()
        self._waiting_frames: "OrderedDict[Key, Dict[str, Any]]" = OrderedDict()
        self._waiting_fds: "OrderedDict[Key, int]" = OrderedDict()
        self._forgotten: "OrderedDict[Key, None]" = OrderedDict()
        self._served = 0
        self._changed = asyncio.Event()  # set when an attempt starts or ends

    def on_request(self, handler: Handler) -> Handler:
        """Sets the request handler: ``async def handler(req) -> answer``
        (a plain function works too). Usable as a decorator.

        Its return value is the answer (``None`` answers nil) unless it
        answered itself; raising ``RemoteError(kind, message)`` answers that
        error, any other exception ``Err{kind: "handler"}``. On ``Cancel`` the
        request's ``cancelled`` event is set and the task cancelled: nothing
        is answered."""
        self._handler = handler
        return handler

    def requests(self) -> List[RequestInfo]:
        """The attempts in flight: received, not answered, not finished."""
        return [req.info() for req in self._requests.values()]

    def _in_flight(self) -> int:
        return len(self._requests)

    # --- frames and descriptors ---------------------------------------------

    def _on_request(self, fields: Dict[str, Any], fd: Optional[int] = None) -> None:
        key = (fields["id"], fields["attempt"])
        if key in self._forgotten or key in self._requests:
            if fd is not None:
                _close(fd)
            return
        if fields.get("attachment") is None:
            self._start(fields, None)
        elif self._fd_channel is None:
            self._refuse(fields, "no fd channel: this worker cannot take attachments")
        elif fd is not None:
            self._start(fields, fd)
        elif key in self._waiting_fds:
            self._start(fields, self._waiting_fds.pop(key))
        else:
            self._remember(self._waiting_frames, key, fields)

    def _on_attachment(self, message: fdchannel.FdMessage) -> None:
        key = (message.id, message.attempt)
        if not message.data:
            if key in self._forgotten or key in self._requests or key in self._waiting_fds:
                _close(message.fd)
            elif key in self._waiting_frames:
                self._start(self._waiting_frames.pop(key), message.fd)
            else:
                self._remember(self._waiting_fds, key, message.fd)
            return
        try:
            frame = protocol.decode_struct(message.data, protocol.TO_WORKER["Request"])
        except protocol.ProtocolError:
            frame = None
        if frame is None or (frame["id"], frame["attempt"]) != key or frame.get("attachment") is None:
            _close(message.fd)
            self._refuse_key(key, "an inline request that does not decode or match its tag")
            return
        self._on_request(frame, message.fd)

    def _on_cancel(self, key: Key) -> None:
        req = self._requests.get(key)
        if req is not None:
            req.cancelled.set()
            task = self._tasks.get(key)
            if task is not None:
                # Soon, not now: a handler that has not started yet still
                # runs up to its first await and sees `cancelled` set.
                asyncio.get_running_loop().call_soon(task.cancel)
            return
        if self._waiting_frames.pop(key, None) is None:
            self._remember(self._forgotten, key, None)  # it may come later, inline
        else:
            self._changed.set()

    def _remember(self, table: "OrderedDict[Key, Any]", key: Key, value: Any) -> None:
        table[key] = value
        while len(table) > TABLE_LIMIT:
            old_key, old = table.popitem(last=False)
            print("nanny_worker: evicted an unmatched attachment half", file=sys.stderr)
            if isinstance(old, int):
                _close(old)
            elif isinstance(old, dict):
                self._refuse(old, "its attachment never came")

    def _refuse(self, fields: Dict[str, Any], message: str) -> None:
        self._refuse_key((fields["id"], fields["attempt"]), message)

    def _refuse_key(self, key: Key, message: str) -> None:
        outcome = {"Err": {"kind": KIND_ATTACHMENT, "message": message}}
        self._send(protocol.variant("Response", id=key[0], attempt=key[1], outcome=outcome))

    # --- handler tasks ----------------------------------------------------------

    def _start(self, fields: Dict[str, Any], fd: Optional[int]) -> None:
        req = Request(cast("Worker", self), fields, fd)
        if fd is not None:
            problem = attachment_problem(req.attachment_kind or "", fd)
            if problem is not None:
                req._close_attachment()
                req._accept()  # the worker has it (11.2)
                req.fail(KIND_ATTACHMENT, problem)
                return
        self._requests[req.key] = req
        self._changed.set()
        self._tasks[req.key] = asyncio.ensure_future(self._run(req))

    async def _run(self, req: Request) -> None:
        try:
            if self._handler is None:
                raise RemoteError(KIND_HANDLER, "this worker has no request handler")
            result = self._handler(req)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            if not req.answered and not req.cancelled.is_set():
                req.respond(result)
        except asyncio.CancelledError:
            pass  # cancelled by the supervisor, or the link is gone: no answer
        except RemoteError as e:
            self._answer_error(req, e.kind, e.message)
        except Disconnected:
            pass
        except PayloadTooLarge:
            pass  # answered as oversize
        except Exception as e:
            if not req.answered:
                traceback.print_exc()
            self._answer_error(req, KIND_HANDLER, str(e) or type(e).__name__)
        finally:
            req._close_attachment()
            self._tasks.pop(req.key, None)
            self._finished(req)

    def _answer_error(self, req: Request, kind: str, message: str) -> None:
        if not req.answered and not req.cancelled.is_set() and not self._closed:
            req.fail(kind, message)

    def _finished(self, req: Request, served: bool = False) -> None:
        if served:
            self._served += 1
        if self._requests.get(req.key) is req:
            del self._requests[req.key]
        self._changed.set()

    def _start_response_stream(self, req: Request, body: bytes, source: chunks.Source) -> None:
        task = asyncio.ensure_future(self._write_response_stream(req, body, source))
        self._streams.add(task)
        task.add_done_callback(self._stream_done)

    def _stream_done(self, task: "asyncio.Task[None]") -> None:
        self._streams.discard(task)
        self._changed.set()

    async def _write_response_stream(self, req: Request, body: bytes, source: chunks.Source) -> None:
        assert self._fd_channel is not None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            tag = fdchannel.encode_tag(req.key[0], req.attempt, fdchannel.KIND_RESPONSE_STREAM)
            try:
                await fdchannel.send(self._fd_channel, tag, theirs.fileno())
            finally:
                theirs.close()
        except OSError as e:
            mine.close()
            print(f"nanny_worker: a response stream could not be sent: {e}", file=sys.stderr)
            if not self._closed:
                req._send_response({"Err": {"kind": KIND_ATTACHMENT, "message": str(e)}}, False)
            return
        req._send_response({"Ok": body}, stream=True)
        mine.setblocking(False)
        _, writer = await asyncio.open_unix_connection(sock=mine)  # the transport owns `mine`
        try:
            await chunks.write_stream(writer, source)
        except Exception as e:  # the caller reads a truncated stream: an error, as it should
            print(f"nanny_worker: a response stream stopped: {e!r}", file=sys.stderr)
        finally:
            writer.close()  # after what is buffered is written
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def _wait_in_flight(self) -> None:
        """Until no attempt, response stream or frame waiting for its
        descriptor is left (section 7)."""
        while self._requests or self._tasks or self._streams or self._waiting_frames:
            self._changed.clear()
            await self._changed.wait()

    def _cancel_all(self) -> None:
        for key in list(self._requests):
            self._on_cancel(key)
        for task in list(self._streams):
            task.cancel()
