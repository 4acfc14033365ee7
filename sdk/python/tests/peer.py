"""The supervisor's side of the protocol, for tests: starts a real worker
process on a real socketpair (and seqpacket fd channel) and speaks to it
frame by frame, as nanny would."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from typing import Any, Dict, List, Optional

import support
from nanny_worker import fdchannel, protocol
from nanny_worker.protocol import Frame

#: A guard against a hang, never a measure: every wait in these tests is
#: for something the worker must do.
GUARD = 30.0

PYTHON = os.environ.get("NANNY_PYTHON", sys.executable)


def request(payload: Any, attempt: int = 1, attachment: Optional[str] = None) -> Dict[str, Any]:
    """A ``Request``'s fields with a new id and a MessagePack payload."""
    return protocol.variant(
        "Request",
        id=uuid.uuid4().bytes,
        attempt=attempt,
        created_at_ms=1764720000123,
        payload=protocol.pack(payload),
        attachment=attachment,
    )["Request"]


class Peer:
    """One worker process and the supervisor's ends of its sockets."""

    def __init__(self, script: str = "conformance_worker.py", fd_channel: bool = True,
                 pulse_ms: int = 1000, max_frame_len: int = protocol.DEFAULT_MAX_FRAME_LEN,
                 hello: Optional[Dict[str, Any]] = None) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(GUARD)
        passed = [theirs.fileno()]
        env = dict(os.environ, NANNY_FD=str(theirs.fileno()), NANNY_WORKER_ID="7",
                   NANNY_POOL="test", NANNY_WORKER_NAME="test:01", PROCESS_LOGICAL_ID="0",
                   NANNY_PULSE_MS=str(pulse_ms), NANNY_MAX_FRAME_LEN=str(max_frame_len),
                   CONFORMANCE_DIR=self.dir.name, PYTHONPATH=support.SDK)
        env.pop("NANNY_FD_CHANNEL", None)
        self.channel: Optional[socket.socket] = None
        if fd_channel:
            self.channel, their_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self.channel.settimeout(GUARD)
            passed.append(their_channel.fileno())
            env["NANNY_FD_CHANNEL"] = str(their_channel.fileno())
        self.proc = subprocess.Popen([PYTHON, os.path.join(support.TESTS, script)], env=env,
                                     pass_fds=passed)
        theirs.close()
        if fd_channel:
            their_channel.close()
        self.buffer = b""
        self.max_frame_len = max_frame_len
        self.heartbeats: List[Dict[str, Any]] = []
        self.send(hello or protocol.variant("Hello", version=4, min_version=2, worker_id=7,
                                            pulse_ms=pulse_ms, max_frame_len=max_frame_len))

    # --- frames -------------------------------------------------------------

    def send(self, message: Any) -> None:
        self.sock.sendall(protocol.encode_frame(message))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> Optional[Frame]:
        """The next frame from the worker, None at end of file."""
        while True:
            if len(self.buffer) >= 4:
                length = protocol.read_length(self.buffer[:4], self.max_frame_len)
                if len(self.buffer) >= 4 + length:
                    body, self.buffer = self.buffer[4 : 4 + length], self.buffer[4 + length :]
                    return protocol.decode_from_worker(body)
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data

    def expect(self, *names: str) -> Frame:
        """The next frame that is not a heartbeat; it must be one of ``names``."""
        while True:
            frame = self.recv()
            if frame is None:
                raise AssertionError(f"end of file while waiting for {names}")
            if frame.name == "Heartbeat" and "Heartbeat" not in names:
                self.heartbeats.append(frame.fields)
                continue
            if frame.name not in names:
                raise AssertionError(f"{frame} while waiting for {names}")
            return frame

    def start(self) -> Frame:
        """Reads the worker's hello and its Ready; returns the hello."""
        hello = self.expect("Hello")
        self.expect("Ready")
        return hello

    def call(self, payload: Any, **kw: Any) -> Frame:
        """Sends a request and returns its Response (Acks and Accepted skipped)."""
        fields = request(payload, **kw)
        self.send({"Request": fields})
        return self.answer_to(fields)

    def answer_to(self, fields: Dict[str, Any]) -> Frame:
        while True:
            frame = self.expect("Response", "Ack", "Accepted")
            if frame.name == "Response" and frame.fields["id"] == fields["id"]:
                return frame

    # --- the fd channel --------------------------------------------------------------

    def send_fd(self, fields: Dict[str, Any], fd: int, kind: int = fdchannel.KIND_ATTACHMENT,
                inline: bool = True) -> None:
        assert self.channel is not None
        tag = fdchannel.encode_tag(fields["id"], fields["attempt"], kind)
        data = tag + (protocol.pack(fields) if inline else b"")
        socket.send_fds(self.channel, [data], [fd])

    def recv_fd(self) -> fdchannel.FdMessage:
        assert self.channel is not None
        data, fds, flags, _ = socket.recv_fds(self.channel, fdchannel.MAX_MESSAGE, 1)
        return fdchannel.decode_message(data, fds, flags)

    # --- the process ------------------------------------------------------------

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self) -> int:
        return self.proc.wait(GUARD)

    def mark(self, suffix: str) -> Optional[str]:
        path = os.path.join(self.dir.name, f"7.{suffix}")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return f.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(GUARD)
        self.sock.close()
        if self.channel is not None:
            self.channel.close()
        self.dir.cleanup()
