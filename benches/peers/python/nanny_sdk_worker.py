"""A nanny worker on the repository's Python SDK (sdk/python, asyncio):
every payload back. The bench sends a MessagePack bin; msgpack decodes it
to ``bytes``, which the SDK encodes back as a bin of the same length."""

import asyncio
import sys

import nanny_worker


async def main() -> int:
    worker = await nanny_worker.connect()

    @worker.on_request
    async def echo(req: nanny_worker.Request) -> object:
        return req.data

    worker.ready()
    return await worker.serve()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
