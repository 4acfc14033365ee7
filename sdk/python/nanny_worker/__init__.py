"""nanny_worker: write nanny workers in Python (protocol version 4).

```python
import asyncio, sys
import nanny_worker

async def main() -> int:
    worker = await nanny_worker.connect()

    @worker.on_request
    async def handle(req: nanny_worker.Request):
        return {"echo": req.data}

    worker.ready()
    return await worker.serve()

sys.exit(asyncio.run(main()))
```
"""

from .chunks import ChunkReader, StreamTruncated
from .connection_setup import capabilities, connect
from .connections import AlreadyListening, Connection, Incoming
from .env import host_pid, is_worker
from .errors import (
    EXIT_DISCONNECTED,
    EXIT_HARD_KILLED,
    EXIT_OK,
    EXIT_PROTOCOL,
    AlreadyAnswered,
    AskError,
    AskTimeout,
    AttachmentError,
    Busy,
    Disconnected,
    Failed,
    HandlerFailed,
    NannyError,
    NoHandler,
    NotAMember,
    NotAWorker,
    PayloadTooLarge,
    ProtocolError,
    Refused,
    RemoteError,
    Unsupported,
    VersionMismatch,
)
from .protocol import PROTOCOL_VERSION
from .request import Request, RequestInfo
from .types import ClusterInfo, Event, Message, MessageMeta, PoolInfo, SpawnedWorker, Target, WorkerRef
from .worker import AGENT, Worker

__version__ = "0.1.0"

__all__ = [
    "AGENT", "PROTOCOL_VERSION", "EXIT_OK", "EXIT_DISCONNECTED", "EXIT_PROTOCOL", "EXIT_HARD_KILLED",
    "connect", "capabilities", "is_worker", "host_pid",
    "Worker", "Request", "RequestInfo", "Event", "Message", "MessageMeta", "ClusterInfo", "PoolInfo",
    "WorkerRef", "SpawnedWorker", "Target", "Incoming", "Connection", "ChunkReader",
    "NannyError", "NotAWorker", "Disconnected", "VersionMismatch", "ProtocolError", "AlreadyAnswered",
    "PayloadTooLarge", "AttachmentError", "RemoteError", "AlreadyListening", "StreamTruncated",
    "AskError", "AskTimeout", "NoHandler", "HandlerFailed", "Refused", "NotAMember", "Busy",
    "Unsupported", "Failed",
]
