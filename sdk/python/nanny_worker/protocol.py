"""The wire format of the nanny worker protocol, version 4 (PROTOCOL.md).

Frames are a 4-byte big-endian length and one MessagePack body. A message is
an externally tagged enum: a bare string for a unit variant (``"Ready"``), a
one-entry map ``{"Name": {fields}}`` otherwise. This module encodes and
decodes frames and checks every decoded message against its shape, so the
rest of the SDK only sees well-formed messages (``Frame``).
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import msgpack  # type: ignore[import-untyped]

#: The protocol version this SDK speaks.
PROTOCOL_VERSION = 4
#: The largest frame body before the supervisor's hello says otherwise.
DEFAULT_MAX_FRAME_LEN = 8 * 1024 * 1024
#: Room left in a frame for the envelope around a payload (PROTOCOL.md, section 2).
PAYLOAD_ENVELOPE = 256
#: Frames nest less than this deep (section 2).
MAX_FRAME_DEPTH = 32

LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame that breaks the protocol (section 8): the link is unusable."""


class Frame(NamedTuple):
    """A decoded, checked message: its variant name and its fields."""

    name: str
    fields: Dict[str, Any]


def max_payload_len(max_frame_len: int) -> int:
    """The largest payload a frame of ``max_frame_len`` carries (section 2)."""
    return max(0, max_frame_len - PAYLOAD_ENVELOPE)


def pack(value: Any) -> bytes:
    """Encodes a value as MessagePack the way the protocol does: str as str,
    bytes as bin, the smallest integer encodings, maps in insertion order."""
    body: bytes = msgpack.packb(value, use_bin_type=True)
    return body


def unpack(body: bytes) -> Any:
    """Decodes one MessagePack value (a payload or a frame body).

    Raises ``ValueError`` for bytes that are not exactly one value."""
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError, TypeError) as e:
        raise ValueError(f"not MessagePack: {e}") from None


def encode_frame(message: Any) -> bytes:
    """The whole frame, length prefix included, of a message (a str or a
    one-entry dict)."""
    body = pack(message)
    return LENGTH.pack(len(body)) + body


def unit(name: str) -> str:
    """A unit variant, e.g. ``"Ready"``."""
    return name


def variant(name: str, **fields: Any) -> Dict[str, Any]:
    """A data variant ``{name: {fields}}``; fields whose value is ``None`` are
    left out (the optional ``?`` fields of section 4)."""
    return {name: {k: v for k, v in fields.items() if v is not None}}


# --- shapes ---------------------------------------------------------------

Check = Callable[[Any], bool]


def _uint(bits: int) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < (1 << bits)


def _list_of(check: Check) -> Check:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bin(v: Any) -> bool:
    return isinstance(v, bytes)


U32, U64 = _uint(32), _uint(64)
I32: Check = lambda v: isinstance(v, int) and not isinstance(v, bool) and -(1 << 31) <= v < (1 << 31)
BOOL: Check = lambda v: isinstance(v, bool)
UUID: Check = lambda v: isinstance(v, bytes) and len(v) == 16
ANY: Check = lambda v: True


def _map_of(check: Check) -> Check:
    return lambda v: isinstance(v, dict) and all(_is_str(k) and check(x) for k, x in v.items())


# A struct shape: field name -> (check, optional).
Shape = Dict[str, Tuple[Check, bool]]


def _struct(**fields: Union[Check, Tuple[Check, bool]]) -> Shape:
    return {k: (f if isinstance(f, tuple) else (f, False)) for k, f in fields.items()}


def _fits(shape: Shape) -> Check:
    return lambda v: isinstance(v, dict) and _strip(shape, v) is not None


def _strip(shape: Shape, value: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The known fields of ``value`` if it fits ``shape``, else None."""
    out: Dict[str, Any] = {}
    for key, (check, optional) in shape.items():
        if key in value and not (optional and value[key] is None):
            if not check(value[key]):
                return None
            out[key] = value[key]
        elif not optional:
            return None
    return out


def _enum(units: Tuple[str, ...], data: Mapping[str, Check]) -> Check:
    def check(v: Any) -> bool:
        if isinstance(v, str):
            return v in units
        if isinstance(v, dict) and len(v) == 1:
            ((k, x),) = v.items()
            return (k in units and x is None) or (k in data and data[k](x))
        return False

    return check


OUTCOME = _enum((), {"Ok": _is_bin, "Err": _fits(_struct(kind=_is_str, message=_is_str))})
ATTACHMENT: Check = lambda v: v in ("Tcp", "Unix", "Fd", "Stream")
META = _struct(id=U64, name=_is_str, pid=U32, pool=_is_str)
WORKER_REF = _enum((), {"Id": U64, "Name": _is_str})
TARGET = _enum((), {"Pid": U32, "Id": U64, "Name": _is_str})
RECIPIENTS = _enum(("Public", "Confirmation"), {"Group": _is_str, "Private": WORKER_REF})
QUESTION = _enum(
    ("RestartMe",),
    {
        "Event": _fits(_struct(event=_is_str, payload=_is_bin)),
        "Kill": _fits(_struct(target=TARGET, code=I32)),
        "Spawn": _fits(
            _struct(
                pool=_is_str,
                count=U32,
                respawn=BOOL,
                args=(_list_of(_is_str), True),
                cpus=(_list_of(U64), True),
            )
        ),
    },
)
ID_ATTEMPT = _struct(id=UUID, attempt=U32)

#: Supervisor -> worker messages (``ToWorker``): data variants by shape.
TO_WORKER: Dict[str, Shape] = {
    "Hello": _struct(
        version=U32,
        min_version=(U32, True),
        worker_id=U64,
        pulse_ms=U64,
        max_frame_len=U32,
        unhealthy_timeout_ms=(U64, True),
    ),
    "Request": _struct(
        id=UUID,
        attempt=U32,
        created_at_ms=U64,
        payload=_is_bin,
        attachment=(ATTACHMENT, True),
    ),
    "Cancel": ID_ATTEMPT,
    "Broadcast": _struct(event=_is_str, payload=_is_bin),
    "Message": _struct(kind=_is_str, meta=_fits(META), data=_is_bin),
    "QueryAnswer": _struct(id=U64, answer=_enum((), {"ClusterInfo": ANY, "Stats": _map_of(U64)})),
    "Answer": _struct(id=U64, outcome=OUTCOME),
    "Exit": _struct(code=I32),
}
TO_WORKER_UNITS = ("SoftKill", "Drain", "HardKill")

#: Worker -> supervisor messages (``FromWorker``).
FROM_WORKER: Dict[str, Shape] = {
    "Hello": _struct(version=U32, pid=U32, agent=_is_str, capabilities=(_list_of(_is_str), True)),
    "Response": _struct(id=UUID, attempt=U32, outcome=OUTCOME, stream=(BOOL, True)),
    "Accepted": ID_ATTEMPT,
    "Ack": ID_ATTEMPT,
    "Emit": _struct(event=_is_str, payload=_is_bin),
    "Heartbeat": _struct(
        rss_bytes=U64,
        in_flight=U32,
        lag_us=U64,
        uptime_ms=U64,
        served=U64,
        runtime_memory=(_map_of(U64), True),
    ),
    "Listening": _struct(on=BOOL),
    "ConnectionTaken": ID_ATTEMPT,
    "ConnectionBounced": ID_ATTEMPT,
    "ConnectionClosed": _struct(id=UUID),
    "Publish": _struct(to=RECIPIENTS, data=_is_bin),
    "Query": _struct(id=U64, query=lambda v: v in ("ClusterInfo", "Stats")),
    "Confirmed": _struct(identifier=_is_str),
    "Ask": _struct(id=U64, question=QUESTION),
    "Closing": _struct(code=I32),
}
FROM_WORKER_UNITS = ("Ready", "Busy")


def depth(value: Any) -> int:
    """How deep arrays and maps nest in a decoded value (a scalar is 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, level + 1) for c in children)
    return deepest


def decode_body(
    body: bytes, shapes: Mapping[str, Shape], units: Tuple[str, ...]
) -> Frame:
    """Decodes and checks one frame body against a direction's messages.

    Raises ``ProtocolError`` for a body that is not MessagePack, nests too
    deep, or is not one of the messages in ``shapes`` / ``units``."""
    try:
        value = unpack(body)
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    if depth(value) >= MAX_FRAME_DEPTH:
        raise ProtocolError(f"a frame nests {MAX_FRAME_DEPTH} or more deep")
    if isinstance(value, str) and value in units:
        return Frame(value, {})
    if isinstance(value, dict) and len(value) == 1:
        ((name, fields),) = value.items()
        if name in units and fields is None:
            return Frame(name, {})
        shape = shapes.get(name) if isinstance(name, str) else None
        if shape is not None and isinstance(fields, dict):
            known = _strip(shape, fields)
            if known is not None:
                return Frame(name, known)
            raise ProtocolError(f"a {name} message with missing or mistyped fields")
    raise ProtocolError(f"not a known message: {_preview(value)}")


def decode_struct(body: bytes, shape: Shape) -> Dict[str, Any]:
    """Decodes a bare struct (an inline request after its fd channel tag) and
    checks it against ``shape``; ``ProtocolError`` if it does not fit."""
    try:
        value = unpack(body)
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    known = _strip(shape, value) if isinstance(value, dict) and depth(value) < MAX_FRAME_DEPTH else None
    if known is None:
        raise ProtocolError("a struct with missing or mistyped fields")
    return known


def decode_to_worker(body: bytes) -> Frame:
    """Decodes a body the supervisor sent (``ToWorker``)."""
    return decode_body(body, TO_WORKER, TO_WORKER_UNITS)


def decode_from_worker(body: bytes) -> Frame:
    """Decodes a body a worker sent (``FromWorker``; for tests and tools)."""
    return decode_body(body, FROM_WORKER, FROM_WORKER_UNITS)


def read_length(prefix: bytes, max_frame_len: int) -> int:
    """The body length of a frame from its 4-byte prefix; a length above
    ``max_frame_len`` is a protocol error, raised before the body is read."""
    length: int = LENGTH.unpack(prefix)[0]
    if length > max_frame_len:
        raise ProtocolError(f"a frame of {length} bytes, above max_frame_len {max_frame_len}")
    return length


def split_frames(data: bytes, max_frame_len: int = DEFAULT_MAX_FRAME_LEN) -> Tuple[List[bytes], bytes]:
    """Cuts a byte buffer into whole frame bodies; returns them and the rest
    (an incomplete frame). Raises ``ProtocolError`` for an oversize length."""
    bodies, at = [], 0
    while len(data) - at >= LENGTH.size:
        length = read_length(data[at : at + LENGTH.size], max_frame_len)
        end = at + LENGTH.size + length
        if end > len(data):
            break
        bodies.append(data[at + LENGTH.size : end])
        at = end
    return bodies, data[at:]


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
