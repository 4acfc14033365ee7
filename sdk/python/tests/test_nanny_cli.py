"""End to end under the real supervisor: `nanny run` with a pool of the
conformance worker and a pool of the example server behind a TCP listener.

Needs the `nanny` binary (`cargo build -p nanny-cli`): `NANNY_BIN`, else
`$CARGO_TARGET_DIR/debug/nanny`, else `target/debug/nanny`; fails without it
(scripts/test runs it after `cargo test`, which builds it)."""

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
from typing import Any, List, Optional

import support
from peer import GUARD, PYTHON


def nanny_binary() -> Optional[str]:
    candidates = [os.environ.get("NANNY_BIN")]
    if os.environ.get("CARGO_TARGET_DIR"):
        candidates.append(os.path.join(os.environ["CARGO_TARGET_DIR"], "debug", "nanny"))
    candidates.append(os.path.join(support.REPO, "target", "debug", "nanny"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """
[supervisor]
pulse = "100ms"

[api]
listen = "127.0.0.1:{api}"

[[pool]]
name = "conf"
command = "{python}"
args = ["{tests}/conformance_worker.py"]
workers = 2
env = {{ PYTHONPATH = "{sdk}", CONFORMANCE_DIR = "{dir}" }}

[[pool]]
name = "web"
command = "{python}"
args = ["{sdk}/examples/echo_server.py"]
workers = 2
env = {{ PYTHONPATH = "{sdk}" }}

[[listener]]
tcp = "127.0.0.1:{port}"
pool = "web"
"""


class NannyRunTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="nanny-py-")
        self.port, api = free_port(), free_port()
        config = os.path.join(self.dir, "nanny.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(api=api, python=PYTHON, tests=support.TESTS, sdk=support.SDK,
                                  dir=self.dir, port=self.port))
        self.log = open(os.path.join(self.dir, "nanny.log"), "w+")
        binary = nanny_binary()
        self.assertIsNotNone(binary, "no nanny binary: cargo build -p nanny-cli")
        self.nanny = subprocess.Popen([str(binary), "run", config], stdout=self.log,
                                      stderr=subprocess.STDOUT, cwd=self.dir)
        self.addCleanup(self.stop)

    def stop(self) -> None:
        if self.nanny.poll() is None:
            self.nanny.kill()
            self.nanny.wait(GUARD)
        self.log.close()

    def api(self, path: str) -> Any:
        state = os.path.join(self.dir, ".nanny")
        with open(os.path.join(state, "api.json")) as f:
            url = json.load(f)["url"]
        with open(os.path.join(state, "token")) as f:
            token = f.read().strip()
        req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=GUARD) as resp:
            return json.load(resp)

    def wait_for(self, what: str, check: Any) -> Any:
        """Polls ``check()`` until it gives something (a guard, not a measure)."""
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline:
            if self.nanny.poll() is not None:
                self.fail(f"nanny exited with {self.nanny.returncode} waiting for {what}")
            try:
                value = check()
            except OSError:
                value = None
            if value:
                return value
            time.sleep(0.05)
        self.fail(f"no {what}")

    def workers(self, pool: str) -> List[Any]:
        return [w for w in self.api("/v1/workers") if w["pool"] == pool]

    def test_python_workers_under_nanny(self) -> None:
        def ready_with_heartbeats() -> Optional[List[Any]]:
            ws = self.workers("conf")
            beating = [w for w in ws if w["state"] == "ready" and (w.get("heartbeat") or {}).get("runtime_memory")]
            return ws if len(beating) == 2 else None

        conf = self.wait_for("two ready conformance workers with runtime_memory", ready_with_heartbeats)
        for w in conf:
            self.assertGreater(w["heartbeat"]["runtime_memory"]["allocated_blocks"], 0)
            self.assertGreater(w["heartbeat"]["rss_bytes"], 0)

        # Balanced connections: the listener's connections reach both Python workers.
        self.wait_for("listening web workers",
                      lambda: all(w["connections"]["listening"] for w in self.workers("web")) or None)
        names = set()
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", self.port), timeout=GUARD) as s:
                s.sendall(b"hello\n")
                line = s.makefile("rb").readline().decode()
                self.assertTrue(line.endswith(" HELLO\n"), line)
                names.add(line.split()[0])
        self.assertEqual(names, {"web:01", "web:02"})

        # SIGKILL a worker: nanny replaces it.
        victim = conf[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        self.wait_for("a replacement", lambda: [w for w in self.workers("conf")
                                                if w["state"] == "ready" and w["pid"] != victim
                                                and w["name"] == conf[0]["name"]])

        # Soft kill from nanny's SIGTERM: every hook runs and every worker exits 0.
        self.nanny.send_signal(signal.SIGTERM)
        self.assertEqual(self.nanny.wait(GUARD), 0)
        soft = sorted(f for f in os.listdir(self.dir) if f.endswith(".soft"))
        self.assertEqual(len(soft), 2, soft)  # the two live conformance workers
        self.log.seek(0)
        log = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read())  # no colours
        self.assertEqual(log.count("status=exit code 0"), 4, log[-3000:])
        self.assertNotIn("PidMismatch", log)


if __name__ == "__main__":
    unittest.main()
