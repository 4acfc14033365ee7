"""Stream attachments, response streams, messages, queries and questions,
against a real worker process (feature_worker.py) driven by peer.py."""

import socket
import struct
import unittest

import support  # noqa: F401  (sys.path)
from nanny_worker import fdchannel, protocol
from peer import Peer, request
from test_session import ok


def chunked(data: bytes, size: int) -> bytes:
    out = b"".join(struct.pack(">I", len(data[i : i + size])) + data[i : i + size]
                   for i in range(0, len(data), size))
    return out + b"\x00\x00\x00\x00"


def read_chunks(sock: socket.socket) -> bytes:
    reader, out = sock.makefile("rb"), b""
    while True:
        (n,) = struct.unpack(">I", reader.read(4))
        if n == 0:
            return out
        out += reader.read(n)


class FeatureTests(unittest.TestCase):
    def setUp(self) -> None:
        self.peer = Peer(script="feature_worker.py")
        self.addCleanup(self.peer.close)
        self.peer.start()

    def test_a_stream_attachment_is_read_to_its_end(self) -> None:
        mine, theirs = socket.socketpair()
        fields = request({"op": "upload"}, attachment="Stream")
        self.peer.send_fd(fields, theirs.fileno())
        theirs.close()
        self.peer.expect("Accepted")  # only now does the supervisor write
        mine.sendall(chunked(b"abc" * 50000, 65536))
        answer = ok(self.peer.answer_to(fields))
        self.assertEqual(answer, {"length": 150000, "upper": b"ABC" * 50000})

    def test_a_truncated_stream_attachment_fails_the_handler(self) -> None:
        mine, theirs = socket.socketpair()
        fields = request({"op": "upload"}, attachment="Stream")
        self.peer.send_fd(fields, theirs.fileno())
        theirs.close()
        self.peer.expect("Accepted")
        mine.sendall(struct.pack(">I", 10) + b"abc")
        mine.close()  # before the end chunk
        outcome = self.peer.answer_to(fields).fields["outcome"]
        self.assertEqual(outcome["Err"]["kind"], "handler")
        self.assertIn("truncated", outcome["Err"]["message"])

    def test_a_response_stream_comes_before_its_response(self) -> None:
        fields = request({"op": "download", "n": 3})
        self.peer.send({"Request": fields})
        message = self.peer.recv_fd()
        self.assertEqual((message.id, message.attempt, message.kind, message.data),
                         (fields["id"], 1, fdchannel.KIND_RESPONSE_STREAM, b""))
        response = self.peer.answer_to(fields)
        self.assertTrue(response.fields["stream"])
        self.assertEqual(ok(response), {"chunks": 3})
        with socket.socket(fileno=message.fd) as stream:
            data = read_chunks(stream)
        self.assertEqual(data, b"A" * 70000 + b"B" * 70000 + b"C" * 70000)

    def test_publish_and_receive_messages(self) -> None:
        publishing = request({"op": "publish", "to": "test:02", "data": [1]})
        self.peer.send({"Request": publishing})
        published = [self.peer.expect("Publish").fields for _ in range(3)]
        self.assertEqual(ok(self.peer.answer_to(publishing)), "sent")
        self.assertEqual([p["to"] for p in published],
                         [{"Private": {"Name": "test:02"}}, {"Group": "test"}, "Public"])
        self.assertEqual(protocol.unpack(published[0]["data"]), [1])
        meta = {"id": 3, "name": "test:03", "pid": 99, "pool": "test"}
        self.peer.send(protocol.variant("Message", kind="private", meta=meta, data=protocol.pack("hi")))
        emit = self.peer.expect("Emit").fields
        self.assertEqual(protocol.unpack(emit["payload"]), ["test:03", "hi"])
        for sender in (3, 4):
            self.peer.send(protocol.variant("Message", kind="confirmation", meta=dict(meta, id=sender),
                                            data=protocol.pack("warm")))
        self.assertEqual(protocol.unpack(self.peer.expect("Emit").fields["payload"]), [3, 4])
        self.assertEqual(self.peer.expect("Confirmed").fields, {"identifier": "warm"})

    def test_queries_and_questions(self) -> None:
        cluster = request({"op": "cluster"})
        self.peer.send({"Request": cluster})
        query = self.peer.expect("Query").fields
        self.assertEqual(query["query"], "ClusterInfo")
        info = {"supervisor_pid": 1, "pools": [{"name": "test", "workers": [{"id": 7, "name": "test:01", "pid": 5}]}]}
        self.peer.send(protocol.variant("QueryAnswer", id=query["id"], answer={"ClusterInfo": info}))
        self.assertEqual(ok(self.peer.answer_to(cluster)), [1, [["test", ["test:01"]]]])
        for outcome, expected in (({"Ok": protocol.pack(42)}, 42),
                                  ({"Err": {"kind": "no-handler", "message": "none"}},
                                   {"error": "NoHandler", "message": "none"}),
                                  ({"Err": {"kind": "novel", "message": "x"}},
                                   {"error": "Failed", "message": "x"})):
            asking = request({"op": "ask", "event": "quota", "payload": 10})
            self.peer.send({"Request": asking})
            ask = self.peer.expect("Ask").fields
            self.assertEqual(ask["question"], {"Event": {"event": "quota", "payload": protocol.pack(10)}})
            self.peer.send(protocol.variant("Answer", id=ask["id"], outcome=outcome))
            self.assertEqual(ok(self.peer.answer_to(asking)), expected)


class ConnectionTests(unittest.TestCase):
    def test_offers_taken_served_closed_bounced_then_drain(self) -> None:
        peer = Peer(script="../examples/echo_server.py")
        self.addCleanup(peer.close)
        peer.start()
        self.assertEqual(peer.expect("Listening").fields, {"on": True})
        conn_id = request(None)["id"]
        offer = {"id": conn_id, "attempt": 1}
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = socket.create_connection(server.getsockname())
            accepted, _ = server.accept()
            tag = fdchannel.encode_tag(conn_id, 1, fdchannel.KIND_CONNECTION)
            socket.send_fds(peer.channel, [tag + protocol.pack({"listener": "web", "kind": "Tcp"})],
                            [accepted.fileno()])
            accepted.close()
            self.assertEqual(peer.expect("ConnectionTaken").fields, offer)
            client.sendall(b"hi\n")
            self.assertEqual(client.makefile("rb").readline(), b"test:01 HI\n")
            client.close()
            self.assertEqual(peer.expect("ConnectionClosed").fields, {"id": conn_id})
            read, write = socket.socketpair()
            socket.send_fds(peer.channel, [tag + protocol.pack({"listener": "web", "kind": "Tcp"})],
                            [read.fileno()])  # a Unix socket that says Tcp
            read.close()
            write.close()
            self.assertEqual(peer.expect("ConnectionBounced").fields, offer)
            self.assertEqual(peer.expect("Listening").fields, {"on": True})
        peer.send("Drain")
        peer.send("SoftKill")
        self.assertEqual(peer.wait(), 0)


if __name__ == "__main__":
    unittest.main()
