"""A nanny worker in Python: answers requests and serves balanced connections.

* requests: answers ``{"echo": <payload>, "worker": <name>}``;
* connections from the pool's ``[[listener]]``: a line protocol that answers
  each line upper-cased, prefixed with the worker's name;
* broadcast ``"greeting"``: changes the prefix;
* soft kill: stops taking connections, finishes, says goodbye on stderr.

Run it under nanny (``examples/nanny.toml`` beside this file)."""

import asyncio
import sys

import nanny_worker


async def serve_connection(conn: nanny_worker.Connection, prefix: "list[str]") -> None:
    async with conn:
        reader, writer = await conn.open_streams()
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(f"{prefix[0]} {line.decode().strip().upper()}\n".encode())
            await writer.drain()


async def main() -> int:
    worker = await nanny_worker.connect()
    prefix = [worker.name or f"worker {worker.id}"]

    @worker.on_request
    async def handle(req: nanny_worker.Request) -> object:
        return {"echo": req.data, "worker": worker.name}

    def greeting(event: nanny_worker.Event) -> None:
        prefix[0] = str(event.data)

    worker.on_broadcast("greeting", greeting)
    worker.on_soft_kill(lambda: print(f"{worker.name}: goodbye", file=sys.stderr))
    worker.ready()

    async def accept() -> None:
        if not worker.has_fd_channel:
            return
        connections = set()
        async for conn in worker.incoming():
            task = asyncio.ensure_future(serve_connection(conn, prefix))
            connections.add(task)
            task.add_done_callback(connections.discard)

    accepting = asyncio.ensure_future(accept())
    code = await worker.serve()
    accepting.cancel()
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
