"""The Python conformance worker (issue 15, contract C), on the public API only.

Run by nanny: ``python sdk/python/tests/conformance_worker.py`` with
``PYTHONPATH=sdk/python``. Requests are MessagePack maps ``{"op": ...}``.
"""

import asyncio
import os
import sys
import time
from typing import Any

import nanny_worker

LANG = "python"


def mark(suffix: str, text: str) -> None:
    """Writes ``$CONFORMANCE_DIR/<NANNY_WORKER_ID>.<suffix>``."""
    folder = os.environ.get("CONFORMANCE_DIR")
    if folder:
        path = os.path.join(folder, f"{os.environ.get('NANNY_WORKER_ID', '0')}.{suffix}")
        with open(path, "w") as f:
            f.write(text)


async def main() -> int:
    worker = await nanny_worker.connect()

    async def handle(req: nanny_worker.Request) -> Any:
        job = req.data
        op = job.get("op") if isinstance(job, dict) else None
        if op == "echo":
            return job.get("data")
        if op == "sleep":
            await asyncio.sleep(job["ms"] / 1000)
            return "slept"
        if op == "wait_cancel":
            try:
                await req.cancelled.wait()
            finally:
                if req.cancelled.is_set():
                    worker.emit("cancelled", job.get("tag"))
            return None  # cancelled: nothing is answered
        if op == "fail":
            raise nanny_worker.RemoteError(job["kind"], job["message"])
        if op == "busy_for":
            worker.busy()
            req.respond("busy")
            await asyncio.sleep(job["ms"] / 1000)
            worker.ready()
            return None
        if op == "block":
            time.sleep(job["ms"] / 1000)  # blocks the event loop on purpose
            return "unblocked"
        if op == "attachment":
            return await write_attachment(req)
        if op == "whoami":
            in_flight = len(worker.requests())
            return {"pid": nanny_worker.host_pid(), "lang": LANG, "in_flight": in_flight}
        raise nanny_worker.RemoteError("unknown-op", str(op))

    async def write_attachment(req: nanny_worker.Request) -> str:
        sock = req.socket
        if sock is None:
            raise nanny_worker.RemoteError("attachment", "no Tcp or Unix connection attached")
        with sock:
            await asyncio.get_running_loop().run_in_executor(
                None, sock.sendall, f"conformance {LANG}\n".encode()
            )
        return "written"

    def echo(event: nanny_worker.Event) -> None:
        worker.emit_bytes("echo:" + event.name, event.raw)

    worker.on_request(handle)
    worker.on_broadcast(None, echo)
    worker.on_soft_kill(lambda: mark("soft", "soft"))
    worker.on_hard_kill(lambda: mark("hard", "hard"))
    worker.ready()
    return await worker.serve()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
