#!/usr/bin/env python3
"""Prints the text frames a KREKI WebSocket sends, one JSON per line, for a while.

Usage: scripts/ws_listen.py ws://127.0.0.1:8082/v1/ws?access_token=TOKEN [SECONDS]

Standard library only (no websocket package needed), for scripts/two-instances.sh. It speaks just
enough RFC 6455 for that: the upgrade, unmasked server text frames, pings answered with pongs.
"""

import base64
import os
import socket
import struct
import sys
import time
from urllib.parse import urlsplit


def read_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def send_frame(sock, opcode, payload):
    # Client frames are masked (RFC 6455 5.3).
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(header + mask + masked)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    url = urlsplit(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
    sock = socket.create_connection((url.hostname, url.port or 80), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    path = url.path + ("?" + url.query if url.query else "")
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exact(sock, 1)
    status = head.split(b"\r\n", 1)[0].decode()
    if " 101 " not in status + " ":
        sys.exit(f"no upgrade: {status}")
    print('{"type":"connected"}', flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            first, second = read_exact(sock, 2)
        except socket.timeout:
            break
        opcode, length = first & 0x0F, second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", read_exact(sock, 2))
        elif length == 127:
            (length,) = struct.unpack("!Q", read_exact(sock, 8))
        payload = read_exact(sock, length)
        if opcode == 0x1:
            print(payload.decode(), flush=True)
        elif opcode == 0x9:
            send_frame(sock, 0xA, payload)
        elif opcode == 0x8:
            break
    send_frame(sock, 0x8, struct.pack("!H", 1000))
    sock.close()


if __name__ == "__main__":
    main()
