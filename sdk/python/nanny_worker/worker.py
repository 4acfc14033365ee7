"""The worker: the link to the supervisor, its session loop, its lifecycle."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import Any, Awaitable, Callable, Dict, List, Optional, Set, Union

from . import fdchannel, protocol
from .connections import _Offers
from .env import Env
from .errors import (
    EXIT_DISCONNECTED,
    EXIT_HARD_KILLED,
    EXIT_OK,
    EXIT_PROTOCOL,
    Disconnected,
    PayloadTooLarge,
)
from .heartbeat import heartbeats
from .intake import _Intake
from .messaging import _Messaging
from .protocol import Frame, ProtocolError
from .types import Event

#: The ``agent`` of this SDK's hello.
AGENT = "nanny-worker-py/0.1.0"

Hook = Callable[[], Union[None, Awaitable[None]]]
BroadcastHandler = Callable[[Event], Union[None, Awaitable[None]]]


class Worker(_Intake, _Messaging, _Offers):
    """One worker's link to its supervisor. Made by ``connect()``.

    Register handlers, call ``ready()``, then ``sys.exit(await worker.serve())``."""

    def __init__(
        self,
        env: Env,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        fd_channel: Optional[socket.socket],
        hello: Dict[str, Any],
        started: float,
    ) -> None:
        self._env = env
        self._started = started  # time.monotonic() when the hello was sent
        self._reader = reader
        self._writer = writer
        self._fd_channel = fd_channel
        #: The supervisor's hello: ``version``, ``pulse_ms``, ``max_frame_len``...
        self.supervisor_hello = hello
        self.max_frame_len: int = hello["max_frame_len"]
        self.max_payload_len = protocol.max_payload_len(self.max_frame_len)
        self.pulse_ms: int = hello["pulse_ms"]
        #: The stall limit in ms (heartbeats are mandatory), or None.
        self.unhealthy_timeout_ms: Optional[int] = hello.get("unhealthy_timeout_ms")
        self._closed = False
        self._soft_hooks: List[Hook] = []
        self._hard_hooks: List[Callable[[], None]] = []
        self._broadcast: Dict[Optional[str], List[BroadcastHandler]] = {}
        self._background: Set["asyncio.Task[Any]"] = set()
        loop = asyncio.get_running_loop()
        self._stop: "asyncio.Future[int]" = loop.create_future()  # soft kill / Exit: the code
        self._lost: "asyncio.Future[int]" = loop.create_future()  # link gone / hard kill
        self._init_intake()
        self._init_messaging()
        self._init_offers()
        loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        if fd_channel is not None:
            loop.add_reader(fd_channel.fileno(), self._read_fd_channel)
        self._spawn(self._read_loop())
        self._heartbeat = self._spawn(heartbeats(self))

    # --- identity ----------------------------------------------------------

    @property
    def id(self) -> int:
        """This worker's id (``NANNY_WORKER_ID``)."""
        return self._env.worker_id

    @property
    def pool(self) -> str:
        """Its pool's name (``NANNY_POOL``)."""
        return self._env.pool

    @property
    def name(self) -> Optional[str]:
        """Its slot's name, ``pool:NN`` (``NANNY_WORKER_NAME``)."""
        return self._env.name

    @property
    def logical_id(self) -> int:
        """Its slot in its pool (``PROCESS_LOGICAL_ID``)."""
        return self._env.logical_id

    @property
    def supervisor_pid(self) -> int:
        """The supervisor's host pid (``NANNY_SUPERVISOR_PID``)."""
        return self._env.supervisor_pid

    @property
    def has_fd_channel(self) -> bool:
        """Whether attachments, response streams and connections work."""
        return self._fd_channel is not None

    @property
    def is_closed(self) -> bool:
        """Whether the link to the supervisor is gone."""
        return self._closed

    # --- what the worker says ----------------------------------------------

    def ready(self) -> None:
        """Accepts requests (mandatory once at start; ends a ``busy()``)."""
        self._send(protocol.unit("Ready"))

    def busy(self) -> None:
        """Accepts no new requests until the next ``ready()``."""
        self._send(protocol.unit("Busy"))

    def emit(self, event: str, payload: Any = None) -> None:
        """A custom event for the supervisor, ``payload`` as MessagePack."""
        self.emit_bytes(event, protocol.pack(payload))

    def emit_bytes(self, event: str, payload: bytes) -> None:
        """``emit`` with a payload already encoded."""
        size = len(payload) + len(event.encode())
        if size > self.max_payload_len:
            raise PayloadTooLarge(f"an emit of {size} bytes, above {self.max_payload_len}")
        self._send(protocol.variant("Emit", event=event, payload=bytes(payload)))

    async def flush(self) -> None:
        """Waits until what was sent so far is written (or the link is gone)."""
        if not self._closed:
            try:
                await self._writer.drain()
            except ConnectionError:
                self._link_lost(EXIT_DISCONNECTED)

    # --- handlers -----------------------------------------------------------

    def on_broadcast(self, event: Optional[str], handler: BroadcastHandler) -> None:
        """Calls ``handler(Event)`` (sync or async) for each broadcast named
        ``event``; ``event=None``: for every broadcast."""
        self._broadcast.setdefault(event, []).append(handler)

    def on_soft_kill(self, hook: Hook) -> Hook:
        """Runs ``hook`` (sync or async) on a soft kill, once the requests in
        flight are answered, before ``serve()`` returns 0. Usable as a decorator."""
        self._soft_hooks.append(hook)
        return hook

    def on_hard_kill(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Runs ``hook`` (sync, best effort) on a hard kill: SIGKILL follows."""
        self._hard_hooks.append(hook)
        return hook

    # --- the session ----------------------------------------------------------

    async def serve(self) -> int:
        """Runs until the supervisor stops this worker; returns the exit code:
        0 after a soft kill (or SIGTERM) or a hard kill, ``code`` after
        ``Exit{code}``, 1 (``EXIT_DISCONNECTED``) at end of file or a write
        error, 2 (``EXIT_PROTOCOL``) after a protocol error."""
        done, _ = await asyncio.wait({self._stop, self._lost}, return_when=asyncio.FIRST_COMPLETED)
        if self._stop in done and not self._lost.done():
            code = self._stop.result()
            drained = asyncio.ensure_future(self._drain())
            waiting: List["asyncio.Future[Any]"] = [drained, self._lost]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if not self._lost.done():
                await self.flush()
                self._shutdown()
                return code
            drained.cancel()
        self._shutdown()
        return self._lost.result()

    async def _drain(self) -> None:
        self._read_fd_channel()  # what waits there came before the SoftKill (11.2)
        await self._wait_in_flight()
        for hook in self._soft_hooks:
            try:
                result = hook()
                if result is not None:
                    await result
            except Exception as e:  # a failing hook must not keep the worker alive
                print(f"nanny_worker: the soft kill hook failed: {e!r}", file=sys.stderr)

    def _begin_stop(self, code: int) -> None:
        if not self._stop.done():
            self._stop.set_result(code)
            self._end_offers()

    def _on_sigterm(self) -> None:
        self._begin_stop(EXIT_OK)  # once: a second SIGTERM finds it stopping

    def _link_lost(self, code: int) -> None:
        if not self._lost.done():
            self._lost.set_result(code)
        self._closed = True
        self._end_offers()
        self._fail_pending()
        self._cancel_all()

    def _shutdown(self) -> None:
        self._closed = True
        self._heartbeat.cancel()
        loop = asyncio.get_running_loop()
        loop.remove_signal_handler(signal.SIGTERM)
        if self._fd_channel is not None:
            loop.remove_reader(self._fd_channel.fileno())
            self._fd_channel.close()
        self._writer.close()

    def _send(self, message: Any) -> None:
        if self._closed:
            raise Disconnected("the link to the supervisor is gone")
        self._writer.write(protocol.encode_frame(message))

    def _spawn(self, coro: Awaitable[Any]) -> "asyncio.Task[Any]":
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _read_loop(self) -> None:
        try:
            while True:
                prefix = await self._reader.readexactly(protocol.LENGTH.size)
                length = protocol.read_length(prefix, self.max_frame_len)
                body = await self._reader.readexactly(length)
                self._on_frame(protocol.decode_to_worker(body))
                await self._writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self._link_lost(EXIT_DISCONNECTED)
        except ProtocolError as e:
            print(f"nanny_worker: protocol error from the supervisor: {e}", file=sys.stderr)
            self._link_lost(EXIT_PROTOCOL)

    def _on_frame(self, frame: Frame) -> None:
        name, fields = frame
        if name == "Request":
            self._on_request(fields)
        elif name == "Cancel":
            self._on_cancel((fields["id"], fields["attempt"]))
        elif name == "Broadcast":
            self._on_broadcast(Event(fields["event"], fields["payload"]))
        elif name == "SoftKill":
            self._begin_stop(EXIT_OK)
        elif name == "Exit":
            self._begin_stop(fields["code"])
        elif name == "Drain":
            self._end_offers()
        elif name == "HardKill":
            self._hard_kill()
        elif name == "Hello":
            raise ProtocolError("a second hello")
        else:
            self._on_messaging_frame(frame)

    def _hard_kill(self) -> None:
        for hook in self._hard_hooks:
            try:
                hook()
            except Exception as e:
                print(f"nanny_worker: the hard kill hook failed: {e!r}", file=sys.stderr)
        self._link_lost(EXIT_HARD_KILLED)

    def _on_broadcast(self, event: Event) -> None:
        handlers = self._broadcast.get(event.name, []) + self._broadcast.get(None, [])
        pending = []
        for handler in handlers:
            try:
                result = handler(event)
                if result is not None:
                    pending.append(result)
            except Exception as e:
                print(f"nanny_worker: a broadcast handler failed: {e!r}", file=sys.stderr)
        if event.fd is not None:
            if pending:
                self._spawn(_close_after(pending, event.fd))
            else:
                os.close(event.fd)
        else:
            for result in pending:
                self._spawn(result)

    def _read_fd_channel(self) -> None:
        assert self._fd_channel is not None
        while True:
            try:
                message = fdchannel.receive(self._fd_channel)
            except fdchannel.Malformed as e:
                print(f"nanny_worker: dropped {e}", file=sys.stderr)
                continue
            except EOFError:
                asyncio.get_running_loop().remove_reader(self._fd_channel.fileno())
                return  # the main socket decides what happens (11.1)
            if message is None:
                return
            self._on_fd_message(message)

    def _on_fd_message(self, message: fdchannel.FdMessage) -> None:
        if message.kind == fdchannel.KIND_ATTACHMENT:
            self._on_attachment(message)
        elif message.kind == fdchannel.KIND_CONNECTION:
            self._on_offer(message)
        elif message.kind == fdchannel.KIND_BROADCAST:
            try:
                fields = protocol.unpack(message.data)
                event = Event(fields["event"], bytes(fields["payload"]), message.fd)
            except (ValueError, KeyError, TypeError) as e:
                os.close(message.fd)
                print(f"nanny_worker: dropped a malformed broadcast: {e}", file=sys.stderr)
                return
            self._on_broadcast(event)
        else:
            os.close(message.fd)
            print(f"nanny_worker: dropped an fd of kind {message.kind}", file=sys.stderr)


async def _close_after(pending: List[Awaitable[None]], fd: int) -> None:
    try:
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        os.close(fd)
