"""The conformance worker as a real process, driven frame by frame by the
supervisor's side of the protocol (peer.py): requests, cancel, busy/ready,
broadcasts, heartbeats, attachments, stopping and the exit codes."""

import os
import signal
import socket
import unittest

import support  # noqa: F401  (sys.path)
from nanny_worker import protocol
from peer import Peer, request


def ok(frame: protocol.Frame) -> object:
    assert "Ok" in frame.fields["outcome"], frame
    return protocol.unpack(frame.fields["outcome"]["Ok"])


def err(frame: protocol.Frame) -> dict:
    assert "Err" in frame.fields["outcome"], frame
    return frame.fields["outcome"]["Err"]


class SessionTests(unittest.TestCase):
    def peer(self, **kw: object) -> Peer:
        peer = Peer(**kw)  # type: ignore[arg-type]
        self.addCleanup(peer.close)
        return peer

    def test_hello_declares_the_capabilities_and_the_host_pid(self) -> None:
        peer = self.peer()
        hello = peer.start().fields
        self.assertEqual(hello["version"], 4)
        self.assertEqual(hello["pid"], peer.proc.pid)
        self.assertEqual(hello["capabilities"], ["fd-channel", "connections", "messaging", "exit"])
        bare = self.peer(fd_channel=False)
        self.assertEqual(bare.start().fields["capabilities"], ["messaging", "exit"])

    def test_requests_are_answered_once_each(self) -> None:
        peer = self.peer()
        peer.start()
        self.assertEqual(ok(peer.call({"op": "echo", "data": {"a": [1, 2]}})), {"a": [1, 2]})
        self.assertEqual(err(peer.call({"op": "fail", "kind": "teapot", "message": "short"})),
                         {"kind": "teapot", "message": "short"})
        self.assertEqual(err(peer.call({"op": "nope"})), {"kind": "unknown-op", "message": "nope"})
        self.assertEqual(err(peer.call({"op": "sleep"}))["kind"], "handler")  # KeyError in the handler

    def test_in_flight_counts_every_attempt_running(self) -> None:
        peer = self.peer()
        peer.start()
        sleeping = request({"op": "sleep", "ms": 300})
        peer.send({"Request": sleeping})
        who = ok(peer.call({"op": "whoami"}))
        self.assertEqual(who, {"pid": peer.proc.pid, "lang": "python", "in_flight": 2})
        self.assertEqual(ok(peer.answer_to(sleeping)), "slept")

    def test_cancel_reaches_the_handler_and_nothing_is_answered(self) -> None:
        peer = self.peer()
        peer.start()
        waiting = request({"op": "wait_cancel", "tag": "t-1"})
        peer.send({"Request": waiting})
        peer.send(protocol.variant("Cancel", id=waiting["id"], attempt=1))
        emit = peer.expect("Emit").fields
        self.assertEqual((emit["event"], protocol.unpack(emit["payload"])), ("cancelled", "t-1"))
        self.assertEqual(ok(peer.call({"op": "echo", "data": 1})), 1)  # no Response for the cancelled one

    def test_busy_then_ready(self) -> None:
        peer = self.peer()
        peer.start()
        peer.send({"Request": request({"op": "busy_for", "ms": 50})})
        self.assertEqual(peer.expect("Busy").name, "Busy")
        self.assertEqual(ok(peer.expect("Response")), "busy")
        self.assertEqual(peer.expect("Ready").name, "Ready")

    def test_broadcasts_are_echoed_byte_for_byte(self) -> None:
        peer = self.peer()
        peer.start()
        peer.send(protocol.variant("Broadcast", event="reload", payload=b"\x81\xa1k\x03"))
        emit = peer.expect("Emit").fields
        self.assertEqual((emit["event"], emit["payload"]), ("echo:reload", b"\x81\xa1k\x03"))

    def test_a_blocked_loop_shows_as_heartbeat_lag(self) -> None:
        peer = self.peer(pulse_ms=20)
        peer.start()
        self.assertEqual(ok(peer.call({"op": "block", "ms": 400})), "unblocked")
        beat = peer.expect("Heartbeat").fields
        while beat["lag_us"] < 300_000:  # the beat that waited behind the block
            beat = peer.expect("Heartbeat").fields
        self.assertIn("allocated_blocks", beat["runtime_memory"])
        self.assertEqual(beat["served"], 1)

    def test_an_answer_too_large_is_oversize(self) -> None:
        peer = self.peer(max_frame_len=2048)
        peer.start()
        self.assertEqual(err(peer.call({"op": "echo", "data": "x" * 1800}))["kind"], "oversize")
        self.assertEqual(ok(peer.call({"op": "echo", "data": "x" * 1700})), "x" * 1700)

    def test_a_tcp_attachment_inline_and_split(self) -> None:
        peer = self.peer()
        peer.start()
        with socket.create_server(("127.0.0.1", 0)) as server:
            for inline in (True, False):
                client = socket.create_connection(server.getsockname())
                accepted, _ = server.accept()
                fields = request({"op": "attachment"}, attachment="Tcp")
                if not inline:
                    peer.send({"Request": fields})
                peer.send_fd(fields, accepted.fileno(), inline=inline)
                accepted.close()  # the worker has its own copy
                self.assertEqual(peer.expect("Accepted").fields["id"], fields["id"])
                self.assertEqual(ok(peer.answer_to(fields)), "written")
                self.assertEqual(client.makefile("rb").read(), b"conformance python\n")
                client.close()

    def test_an_attachment_of_the_wrong_kind_is_accepted_and_refused(self) -> None:
        peer = self.peer()
        peer.start()
        read, write = os.pipe()
        fields = request({"op": "attachment"}, attachment="Unix")
        peer.send_fd(fields, read)
        os.close(read)
        peer.expect("Accepted")
        self.assertEqual(err(peer.answer_to(fields))["kind"], "attachment")
        os.close(write)

    def test_without_the_fd_channel_an_attachment_is_refused(self) -> None:
        peer = self.peer(fd_channel=False)
        peer.start()
        self.assertEqual(err(peer.call({"op": "attachment"}, attachment="Tcp"))["kind"], "attachment")


class StoppingTests(unittest.TestCase):
    def peer(self, **kw: object) -> Peer:
        peer = Peer(**kw)  # type: ignore[arg-type]
        self.addCleanup(peer.close)
        return peer

    def test_soft_kill_finishes_in_flight_runs_the_hook_exits_0(self) -> None:
        peer = self.peer()
        peer.start()
        sleeping = request({"op": "sleep", "ms": 200})
        peer.send({"Request": sleeping})
        peer.send("SoftKill")
        self.assertEqual(ok(peer.answer_to(sleeping)), "slept")
        self.assertEqual(peer.wait(), 0)
        self.assertEqual(peer.mark("soft"), "soft")

    def test_sigterm_is_one_soft_kill(self) -> None:
        peer = self.peer()
        peer.start()
        sleeping = request({"op": "sleep", "ms": 200})
        peer.send({"Request": sleeping})
        self.assertEqual(ok(peer.call({"op": "whoami"}))["in_flight"], 2)  # both read by now
        peer.signal(signal.SIGTERM)
        peer.signal(signal.SIGTERM)  # a second one is ignored
        self.assertEqual(ok(peer.answer_to(sleeping)), "slept")
        self.assertEqual(peer.wait(), 0)
        self.assertEqual(peer.mark("soft"), "soft")

    def test_exit_code_from_another_members_kill(self) -> None:
        peer = self.peer()
        peer.start()
        peer.send(protocol.variant("Exit", code=3))
        self.assertEqual(peer.wait(), 3)
        self.assertEqual(peer.mark("soft"), "soft")

    def test_hard_kill_runs_its_hook(self) -> None:
        peer = self.peer()
        peer.start()
        peer.send("HardKill")
        self.assertEqual(peer.wait(), 0)
        self.assertEqual(peer.mark("hard"), "hard")
        self.assertIsNone(peer.mark("soft"))

    def test_end_of_file_exits_1(self) -> None:
        peer = self.peer()
        peer.start()
        peer.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(peer.wait(), 1)

    def test_a_protocol_error_exits_2(self) -> None:
        for bad in (b"\x00\x00\x00\x01\xc1", protocol.encode_frame({"Bogus": {}}),
                    protocol.encode_frame(protocol.variant("Hello", version=4, worker_id=7, pulse_ms=1,
                                                           max_frame_len=1 << 20))):
            with self.subTest(bad.hex()):
                peer = self.peer()
                peer.start()
                peer.send_raw(bad)
                self.assertEqual(peer.wait(), 2)

    def test_a_version_range_without_4_is_refused(self) -> None:
        peer = self.peer(hello=protocol.variant("Hello", version=3, min_version=2, worker_id=7,
                                                pulse_ms=1000, max_frame_len=1 << 20))
        self.assertEqual(peer.expect("Hello").name, "Hello")
        self.assertNotEqual(peer.wait(), 0)


if __name__ == "__main__":
    unittest.main()
