"""HTTP/1.1 requests written byte by byte, for what clients refuse to send (non-UTF-8 headers).

aiohttp and requests encode headers themselves and reject bytes an attacker can still put
on the wire, so these tests write the request to a socket and read the reply back.
"""

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Text, Tuple
from urllib.parse import urlsplit

TIMEOUT_S = 10.0


@dataclass
class RawReply:
    status: int
    headers: Dict[Text, Text]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    url: Text, method: Text, target: bytes, headers: Sequence[Tuple[bytes, bytes]] = (), body: bytes = b""
) -> RawReply:
    """Sends `method target` with exactly these header bytes and body; the connection closes after."""
    parts = urlsplit(url)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), TIMEOUT_S)
    lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1", b"Host: " + parts.netloc.encode("ascii")]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: " + str(len(body)).encode("ascii"), b"Connection: close"]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    try:
        data = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    reply_headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        reply_headers[name.strip().lower()] = value.strip()
    return RawReply(int(status_line.split(" ")[1]), reply_headers, payload)


def bearer_header(token: bytes) -> Tuple[bytes, bytes]:
    return b"Authorization", b"Bearer " + token


def query(path: Text, token: Optional[Text]) -> bytes:
    return (path + (f"?token={token}" if token else "")).encode("ascii")
