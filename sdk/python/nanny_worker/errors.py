"""The SDK's exceptions and the exit codes of ``Worker.serve``."""

from __future__ import annotations

from typing import Dict, Type

from .protocol import ProtocolError

#: ``serve()`` after a soft kill (or a SIGTERM): drained, exit 0.
EXIT_OK = 0
#: ``serve()`` when the link ended: end of file or a write error (PROTOCOL.md 7).
EXIT_DISCONNECTED = 1
#: ``serve()`` after a protocol error from the supervisor (section 8).
EXIT_PROTOCOL = 2
#: ``serve()`` after a hard kill (SIGKILL follows anyway).
EXIT_HARD_KILLED = 0


class NannyError(Exception):
    """Base class of this SDK's errors."""


class NotAWorker(NannyError):
    """``connect()`` outside nanny: ``NANNY_FD`` is not set."""


class Disconnected(NannyError):
    """The link to the supervisor is gone."""


class VersionMismatch(NannyError):
    """The supervisor does not accept this SDK's protocol version."""


class AlreadyAnswered(NannyError):
    """A second answer for one attempt: each gets exactly one."""


class PayloadTooLarge(NannyError, ValueError):
    """A payload above ``max_payload_len``; nothing (or, for an answer, an
    ``oversize`` error) was sent."""


class AttachmentError(NannyError):
    """An attachment or response stream that could not be used or passed."""


class RemoteError(NannyError):
    """An error answer ``Err{kind, message}``: raise it from a request handler
    to answer with that kind (any other exception answers kind ``handler``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class AskError(NannyError):
    """A question to the supervisor (``ask``, ``kill``, ``spawn_workers``,
    ``restart_me``) that got no answer of its own; ``kind`` is the wire kind."""

    kind = "failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoHandler(AskError):
    """The supervisor has no handler for this event."""

    kind = "no-handler"


class HandlerFailed(AskError):
    """The supervisor's handler failed (an error or a panic)."""

    kind = "handler"


class Refused(AskError):
    """The pool's settings do not allow it."""

    kind = "refused"


class NotAMember(AskError):
    """The kill's target is no worker of this supervisor."""

    kind = "not-a-member"


class Busy(AskError):
    """This worker has too many questions in flight on the supervisor."""

    kind = "busy"


class Unsupported(AskError):
    """The supervisor (version below 4) or the target does not support it."""

    kind = "unsupported"


class Failed(AskError):
    """Admitted and failed (also: an unknown kind)."""

    kind = "failed"


class AskTimeout(AskError):
    """No answer within the call's timeout."""

    kind = "timeout"


_BY_KIND: Dict[str, Type[AskError]] = {
    cls.kind: cls for cls in (NoHandler, HandlerFailed, Refused, NotAMember, Busy, Unsupported)
}
_BY_KIND["panic"] = HandlerFailed


def ask_error(kind: str, message: str) -> AskError:
    """The exception for an ``Err`` answer of kind ``kind``."""
    return _BY_KIND.get(kind, Failed)(message)


__all__ = [
    "AlreadyAnswered",
    "AskError",
    "AskTimeout",
    "AttachmentError",
    "Busy",
    "Disconnected",
    "Failed",
    "HandlerFailed",
    "NannyError",
    "NoHandler",
    "NotAMember",
    "NotAWorker",
    "PayloadTooLarge",
    "ProtocolError",
    "Refused",
    "RemoteError",
    "Unsupported",
    "VersionMismatch",
]
