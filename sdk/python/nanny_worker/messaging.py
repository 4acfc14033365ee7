"""Messages between workers, queries and questions (PROTOCOL.md, 13 and 14)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, NoReturn, Optional, Sequence, Union

from . import protocol
from .errors import AskTimeout, Disconnected, Failed, PayloadTooLarge, ask_error
from .protocol import Frame
from .types import ClusterInfo, Message, MessageMeta, SpawnedWorker, Target

if TYPE_CHECKING:  # pragma: no cover
    from .worker import Worker

MessageHandler = Callable[[Message], Union[None, Awaitable[None]]]
ConfirmationHandler = Callable[[List[MessageMeta]], Union[None, Awaitable[None]]]

#: The timeout of ``ask``, ``kill`` and ``restart_me``, in seconds.
DEFAULT_ASK_TIMEOUT = 10.0
#: The timeout of ``spawn_workers`` (its answer waits for the new workers).
DEFAULT_SPAWN_TIMEOUT = 30.0
#: Room a ``Publish`` leaves for the message's meta (section 14.1).
PUBLISH_ENVELOPE = 64


class _Listener:
    def __init__(self, n: int, identifier: str, handler: ConfirmationHandler) -> None:
        self.n, self.identifier, self.handler = max(1, n), identifier, handler
        self.metas: List[MessageMeta] = []


class _Messaging:
    """The messaging half of ``Worker``."""

    if TYPE_CHECKING:  # pragma: no cover  (the rest of Worker)
        _writer: asyncio.StreamWriter
        max_payload_len: int

        def _send(self, message: Any) -> None: ...

        def _spawn(self, coro: Awaitable[Any]) -> "asyncio.Task[Any]": ...

    def _init_messaging(self) -> None:
        self._on_message: Dict[str, List[MessageHandler]] = {"public": [], "group": [], "private": []}
        self._listeners: List[_Listener] = []
        self._next_id = 0
        self._queries: Dict[int, "asyncio.Future[Any]"] = {}
        self._asks: Dict[int, "asyncio.Future[Any]"] = {}

    # --- publishing -----------------------------------------------------------

    def publish_public(self, data: Any) -> None:
        """A message (MessagePack) for every other worker that takes messages."""
        self._publish("Public", data, "")

    def publish_group(self, group: str, data: Any) -> None:
        """A message for every other worker of the pool ``group``."""
        self._publish({"Group": group}, data, group)

    def publish_private(self, to: Target, data: Any) -> None:
        """A message for one worker: ``Target.id(n)`` or ``Target.name("pool:NN")``."""
        if to.variant not in ("Id", "Name"):
            raise ValueError("a private message goes to a Target.id or a Target.name")
        self._publish({"Private": to.wire()}, data, str(to.value))

    def emit_confirmation(self, identifier: str) -> None:
        """A confirmation of ``identifier`` for every worker listening for it."""
        self._publish("Confirmation", identifier, "")

    def _publish(self, to: Any, data: Any, name: str) -> None:
        body = protocol.pack(data)
        limit = self.max_payload_len - PUBLISH_ENVELOPE - len(name.encode())
        if len(body) > limit:
            raise PayloadTooLarge(f"a message of {len(body)} bytes, above {limit}")
        self._send(protocol.variant("Publish", to=to, data=body))

    # --- receiving --------------------------------------------------------------

    def on_public(self, handler: MessageHandler) -> MessageHandler:
        """Calls ``handler(Message)`` for each public message."""
        self._on_message["public"].append(handler)
        return handler

    def on_group(self, handler: MessageHandler) -> MessageHandler:
        """Calls ``handler(Message)`` for each message to this worker's group."""
        self._on_message["group"].append(handler)
        return handler

    def on_private(self, handler: MessageHandler) -> MessageHandler:
        """Calls ``handler(Message)`` for each private message to this worker."""
        self._on_message["private"].append(handler)
        return handler

    def on_confirmation(self, n: int, identifier: str, handler: ConfirmationHandler) -> None:
        """Counts the confirmations of ``identifier``; at ``n`` calls
        ``handler(metas)``, tells the supervisor (``Confirmed``) and counts
        from zero again."""
        self._listeners.append(_Listener(n, identifier, handler))

    def _on_messaging_frame(self, frame: Frame) -> None:
        name, fields = frame
        if name == "Message":
            meta = MessageMeta(**fields["meta"])
            self._on_message_frame(Message(fields["kind"], meta, fields["data"]))
        elif name == "QueryAnswer":
            _resolve(self._queries, fields["id"], fields["answer"])
        elif name == "Answer":
            _resolve(self._asks, fields["id"], fields["outcome"])

    def _on_message_frame(self, message: Message) -> None:
        if message.kind != "confirmation":
            for handler in self._on_message.get(message.kind, []):
                self._call(handler, message)
            return
        try:
            identifier = message.data
        except ValueError:
            return
        for listener in self._listeners:
            if listener.identifier == identifier:
                listener.metas.append(message.meta)
                if len(listener.metas) >= listener.n:
                    metas, listener.metas = listener.metas, []
                    self._call(listener.handler, metas)
                    self._send(protocol.variant("Confirmed", identifier=identifier))

    def _call(self, handler: Callable[[Any], Any], value: Any) -> None:
        try:
            result = handler(value)
            if result is not None:
                self._spawn(result)
        except Exception as e:
            print(f"nanny_worker: a message handler failed: {e!r}", file=sys.stderr)

    # --- queries and questions ------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    async def _roundtrip(self, table: Dict[int, "asyncio.Future[Any]"], frame: Any, id: int,
                         timeout: Optional[float]) -> Any:
        future: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        table[id] = future
        try:
            self._send(frame)
            return await asyncio.wait_for(future, timeout)
        finally:
            table.pop(id, None)

    async def _query(self, query: str) -> Any:
        id = self._new_id()
        answer = await self._roundtrip(self._queries, protocol.variant("Query", id=id, query=query), id, None)
        if not isinstance(answer, dict) or query not in answer:
            raise Failed(f"a {query} query answered with {answer!r}")
        return answer[query]

    async def cluster_info(self) -> ClusterInfo:
        """The pools and their live workers, as the supervisor sees them now."""
        return ClusterInfo.from_wire(await self._query("ClusterInfo"))

    async def stats(self) -> Dict[str, int]:
        """This worker's counters as the supervisor keeps them (14.5)."""
        return dict(await self._query("Stats"))

    async def _ask(self, question: Any, timeout: float) -> Any:
        id = self._new_id()
        frame = protocol.variant("Ask", id=id, question=question)
        try:
            outcome = await self._roundtrip(self._asks, frame, id, timeout)
        except asyncio.TimeoutError:
            raise AskTimeout(f"no answer within {timeout} s") from None
        if "Err" in outcome:
            raise ask_error(outcome["Err"]["kind"], outcome["Err"]["message"])
        return protocol.unpack(outcome["Ok"])

    async def ask(self, event: str, payload: Any = None, timeout: float = DEFAULT_ASK_TIMEOUT) -> Any:
        """Asks the supervisor's handler for ``event``; returns its answer.
        Raises an ``AskError`` (``NoHandler``, ``HandlerFailed``, ``AskTimeout``...)."""
        body = protocol.pack(payload)
        if len(body) + len(event.encode()) > self.max_payload_len:
            raise PayloadTooLarge(f"a question of {len(body)} bytes")
        return await self._ask({"Event": {"event": event, "payload": body}}, timeout)

    async def kill(self, target: Target, code: int = 0, timeout: float = DEFAULT_ASK_TIMEOUT) -> None:
        """Ends another member (it gets ``Exit{code}``); ``Refused``,
        ``NotAMember`` or ``Unsupported`` when it cannot."""
        await self._ask({"Kill": {"target": target.wire(), "code": code}}, timeout)

    async def spawn_workers(self, pool: str, count: int = 1, respawn: bool = False,
                            args: Optional[Sequence[str]] = None, cpus: Optional[Sequence[int]] = None,
                            timeout: float = DEFAULT_SPAWN_TIMEOUT) -> List[SpawnedWorker]:
        """Starts ``count`` workers of ``pool``; returns them once all are ready."""
        spawn = protocol.variant("Spawn", pool=pool, count=count, respawn=respawn,
                                 args=None if args is None else list(args),
                                 cpus=None if cpus is None else list(cpus))
        answer = await self._ask(spawn, timeout)
        return [SpawnedWorker(w["id"], w["name"]) for w in answer]

    async def restart_me(self, timeout: float = DEFAULT_ASK_TIMEOUT) -> None:
        """Asks for a make-before-break restart of this worker."""
        await self._ask("RestartMe", timeout)

    async def close(self, code: int) -> NoReturn:
        """Ends this worker at once with ``code`` (``Closing``): unanswered
        attempts are retried elsewhere. Never returns."""
        try:
            self._send(protocol.variant("Closing", code=code))
            await self._writer.drain()
        except (Disconnected, ConnectionError):
            pass
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def _fail_pending(self) -> None:
        for table in (self._queries, self._asks):
            for future in table.values():
                if not future.done():
                    future.set_exception(Disconnected("the link to the supervisor is gone"))


def _resolve(table: Dict[int, "asyncio.Future[Any]"], id: int, value: Any) -> None:
    future = table.get(id)
    if future is not None and not future.done():
        future.set_result(value)
