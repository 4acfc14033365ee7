"""The chunked stream format (PROTOCOL.md, section 11.4).

Chunks are a big-endian ``u32`` length and that many bytes; a zero length is
the clean end. End of file before it means the stream was truncated.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import AsyncIterable, AsyncIterator, Iterable, Optional, Union

#: Writers send chunks of at most this many bytes.
MAX_WRITE_CHUNK = 64 * 1024
#: Readers refuse a chunk longer than this.
MAX_READ_CHUNK = 1024 * 1024

_LEN = struct.Struct(">I")

#: What a response stream may be made from: bytes, or chunks of them.
Source = Union[bytes, Iterable[bytes], AsyncIterable[bytes]]


class StreamTruncated(EOFError):
    """The writer exited (or its source failed) before the end chunk."""

    def __init__(self) -> None:
        super().__init__("stream truncated: the other side exited before finishing")


class ChunkReader:
    """Reads a chunked stream: ``async for chunk in reader`` or
    ``await reader.read_all()``. Owns its socket; closes it at the end."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader: Optional[asyncio.StreamReader] = None
        self._writer: Optional[asyncio.StreamWriter] = None
        self._done = False

    async def _open(self) -> asyncio.StreamReader:
        if self._reader is None:
            self._sock.setblocking(False)
            self._reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        return self._reader

    async def read_chunk(self) -> Optional[bytes]:
        """The next chunk, or None after the clean end. Raises
        ``StreamTruncated`` or ``ValueError`` (a chunk above 1 MiB)."""
        if self._done:
            return None
        reader = await self._open()
        try:
            (length,) = _LEN.unpack(await reader.readexactly(_LEN.size))
            if length > MAX_READ_CHUNK:
                self.close()
                raise ValueError(f"a stream chunk of {length} bytes, above {MAX_READ_CHUNK}")
            if length == 0:
                self.close()
                return None
            return await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            self.close()
            raise StreamTruncated() from None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.read_chunk()
            if chunk is None:
                return
            yield chunk

    async def read_all(self) -> bytes:
        """Every byte up to the clean end."""
        return b"".join([chunk async for chunk in self])

    def close(self) -> None:
        """Stops reading; the writer's copy stops as soon as it sees it."""
        self._done = True
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()


async def _pieces(source: Source) -> AsyncIterator[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
    elif hasattr(source, "__aiter__"):
        async for piece in source:
            yield piece
    else:
        for piece in source:
            yield piece


async def write_stream(writer: asyncio.StreamWriter, source: Source) -> None:
    """Writes ``source`` as chunks of at most 64 KiB, then the end chunk.

    Stops (raising ``ConnectionError``) as soon as the reader is gone."""
    async for piece in _pieces(source):
        view = memoryview(piece)
        for at in range(0, len(view), MAX_WRITE_CHUNK):
            chunk = view[at : at + MAX_WRITE_CHUNK]
            writer.write(_LEN.pack(len(chunk)) + bytes(chunk))
            await writer.drain()
    writer.write(_LEN.pack(0))
    await writer.drain()
