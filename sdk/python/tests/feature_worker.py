"""A test worker for the SDK's optional parts: stream attachments, response
streams, messages, queries and questions. Requests are ``{"op": ...}`` maps."""

import asyncio
import sys
from typing import Any

import nanny_worker


async def main() -> int:
    worker = await nanny_worker.connect()
    worker.on_private(lambda m: worker.emit("private", [m.meta.name, m.data]))
    worker.on_confirmation(2, "warm", lambda metas: worker.emit("warm", [m.id for m in metas]))

    @worker.on_request
    async def handle(req: nanny_worker.Request) -> Any:
        job = req.data
        op = job["op"]
        if op == "upload":
            stream = req.stream
            assert stream is not None
            data = await stream.read_all()
            return {"length": len(data), "upper": data.upper()}
        if op == "download":
            chunks = [bytes([65 + i % 26]) * 70000 for i in range(job["n"])]
            req.respond_stream({"chunks": job["n"]}, chunks)
            return None
        if op == "publish":
            worker.publish_private(nanny_worker.Target.name(job["to"]), job["data"])
            worker.publish_group("test", "g")
            worker.publish_public("p")
            return "sent"
        if op == "cluster":
            info = await worker.cluster_info()
            return [info.supervisor_pid, [(p.name, [w.name for w in p.workers]) for p in info.pools]]
        if op == "stats":
            return await worker.stats()
        if op == "ask":
            try:
                return await worker.ask(job["event"], job["payload"])
            except nanny_worker.AskError as e:
                return {"error": type(e).__name__, "message": e.message}
        raise nanny_worker.RemoteError("unknown-op", op)

    worker.ready()
    return await worker.serve()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
