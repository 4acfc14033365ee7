"""Every frame of worker-sdk/vectors/frames.json, decoded and encoded (contract A)."""

import json
import os
import unittest
from typing import Any, Callable, Dict

import support  # noqa: F401  (sys.path)
from nanny_worker import protocol
from nanny_worker.connection_setup import capabilities

VECTORS = os.path.join(support.REPO, "worker-sdk", "vectors", "frames.json")


def from_json(value: Any) -> Any:
    """JSON as the vectors write it ({"$bin": hex} for bin) to Python values."""
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def load() -> Dict[str, Dict[str, Any]]:
    with open(VECTORS) as f:
        return {v["name"]: v for v in json.load(f)["vectors"]}


def as_message(frame: protocol.Frame) -> Any:
    return frame.name if not frame.fields and frame.name in protocol.TO_WORKER_UNITS + protocol.FROM_WORKER_UNITS else {frame.name: frame.fields}


def decoder(direction: str) -> Callable[[bytes], protocol.Frame]:
    return protocol.decode_to_worker if direction == "to_worker" else protocol.decode_from_worker


def body_of(frame: bytes) -> bytes:
    bodies, rest = protocol.split_frames(frame)
    assert len(bodies) == 1 and rest == b"", "one whole frame"
    return bodies[0]


ID = bytes.fromhex("6f1c3b2a904d4e218f035a7bc4d219e8")
ONES = b"\x11" * 16

# The SDK's own constructions of the frames it sends, by vector name.
BUILT = {
    "worker hello, minimal": lambda: protocol.variant("Hello", version=4, pid=31337, agent="nanny-worker-py/0.1.0"),
    "worker hello with capabilities": lambda: protocol.variant(
        "Hello", version=4, pid=31337, agent="nanny-worker-py/0.1.0", capabilities=capabilities(True)
    ),
    "ready": lambda: protocol.unit("Ready"),
    "busy": lambda: protocol.unit("Busy"),
    "response: ok": lambda: protocol.variant(
        "Response", id=ID, attempt=1, outcome={"Ok": protocol.pack({"echo": "hello"})}, stream=None
    ),
    "response with a stream": lambda: protocol.variant(
        "Response", id=ID, attempt=1, outcome={"Ok": protocol.pack(None)}, stream=True
    ),
    "accepted": lambda: protocol.variant("Accepted", id=ID, attempt=2),
    "emit": lambda: protocol.variant("Emit", event="cancelled", payload=protocol.pack("tag-1")),
    "connection closed": lambda: protocol.variant("ConnectionClosed", id=ONES),
    "closing": lambda: protocol.variant("Closing", code=3),
}


class VectorTests(unittest.TestCase):
    def setUp(self) -> None:
        self.vectors = load()

    def test_the_file_has_both_directions_and_every_case(self) -> None:
        directions = {v["direction"] for v in self.vectors.values()}
        self.assertEqual(directions, {"to_worker", "from_worker"})
        self.assertTrue(any(v.get("invalid") for v in self.vectors.values()))
        self.assertTrue(any(v.get("same_as") for v in self.vectors.values()))

    def test_canonical_vectors_encode_to_their_frame(self) -> None:
        for name, v in self.vectors.items():
            if v.get("canonical"):
                with self.subTest(name):
                    frame = protocol.encode_frame(from_json(v["value"]))
                    self.assertEqual(frame.hex(), v["frame"])

    def test_valid_vectors_decode_to_their_value(self) -> None:
        for name, v in self.vectors.items():
            if v.get("invalid"):
                continue
            with self.subTest(name):
                meaning = self.vectors[v["same_as"]] if v.get("same_as") else v
                decoded = decoder(v["direction"])(body_of(bytes.fromhex(v["frame"])))
                self.assertEqual(as_message(decoded), from_json(meaning["value"]))

    def test_decoded_frames_reencode_to_the_canonical_frame(self) -> None:
        for name, v in self.vectors.items():
            if v.get("invalid"):
                continue
            with self.subTest(name):
                canonical = self.vectors[v["same_as"]] if v.get("same_as") else v
                decoded = decoder(v["direction"])(body_of(bytes.fromhex(v["frame"])))
                self.assertEqual(protocol.encode_frame(as_message(decoded)).hex(), canonical["frame"])

    def test_invalid_vectors_are_protocol_errors(self) -> None:
        for name, v in self.vectors.items():
            if not v.get("invalid"):
                continue
            with self.subTest(name):
                frame = bytes.fromhex(v["frame"])
                with self.assertRaises(protocol.ProtocolError):
                    bodies, _ = protocol.split_frames(frame, protocol.DEFAULT_MAX_FRAME_LEN)
                    decoder(v["direction"])(bodies[0])

    def test_the_sdks_own_frames_match_the_vectors(self) -> None:
        for name, build in BUILT.items():
            with self.subTest(name):
                self.assertEqual(protocol.encode_frame(build()).hex(), self.vectors[name]["frame"])


if __name__ == "__main__":
    unittest.main()
