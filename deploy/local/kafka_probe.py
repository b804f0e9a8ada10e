"""Readiness probe for the local Kafka broker: one bootstrap metadata request.

`deploy/local/infra.sh` runs it (with the system `python3`, no virtualenv
needed) until the broker answers. Kafka counts as ready when a Metadata request
to the bootstrap address lists at least one broker and an active controller,
which is what a client needs before it can produce, consume or create topics.

It speaks the Kafka wire protocol directly, using only the standard library:

- ApiVersions v0 (every broker answers it) to learn the Metadata versions;
- Metadata v4 (no topics) to list the brokers and the controller.

Usage: python3 deploy/local/kafka_probe.py [HOST:PORT]   (exit 0 = ready)
"""

from __future__ import annotations

import socket
import struct
import sys

API_METADATA = 3
API_VERSIONS = 18
METADATA_VERSION = 4
CLIENT_ID = b"local-infra-probe"


class ProbeError(Exception):
    """The broker is not (yet) able to serve clients."""


def _request(
    sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes
) -> bytes:
    """Send one request (header v1) and return the response body after the correlation id."""
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _read_exactly(sock, 4))[0]
    response = _read_exactly(sock, size)
    (answered_id,) = struct.unpack_from(">i", response, 0)
    if answered_id != correlation_id:
        raise ProbeError(f"correlation id {answered_id} != {correlation_id}")
    return response[4:]


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ProbeError("connection closed by the broker")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_string(data: bytes, offset: int) -> tuple[str | None, int]:
    (length,) = struct.unpack_from(">h", data, offset)
    offset += 2
    if length < 0:
        return None, offset
    return data[offset : offset + length].decode(), offset + length


def _metadata_version_range(sock: socket.socket) -> tuple[int, int]:
    body = _request(sock, API_VERSIONS, 0, 1, b"")
    error_code, count = struct.unpack_from(">hi", body, 0)
    if error_code:
        raise ProbeError(f"ApiVersions error code {error_code}")
    for index in range(count):
        api_key, min_version, max_version = struct.unpack_from(">hhh", body, 6 + 6 * index)
        if api_key == API_METADATA:
            return min_version, max_version
    raise ProbeError("the broker does not list the Metadata API")


def probe(host: str, port: int, timeout: float = 2.0) -> str:
    """Return a one-line description of the cluster, or raise ProbeError/OSError."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        min_version, max_version = _metadata_version_range(sock)
        if not min_version <= METADATA_VERSION <= max_version:
            raise ProbeError(f"Metadata v{METADATA_VERSION} not in [{min_version}, {max_version}]")
        # Body: topics = empty array (ask for no topic), allow_auto_topic_creation = false.
        body = _request(sock, API_METADATA, METADATA_VERSION, 2, struct.pack(">ib", 0, 0))
        offset = 4  # throttle_time_ms
        (broker_count,) = struct.unpack_from(">i", body, offset)
        offset += 4
        brokers: list[str] = []
        for _ in range(broker_count):
            (node_id,) = struct.unpack_from(">i", body, offset)
            host_name, offset = _read_string(body, offset + 4)
            (broker_port,) = struct.unpack_from(">i", body, offset)
            _rack, offset = _read_string(body, offset + 4)
            brokers.append(f"{node_id}@{host_name}:{broker_port}")
        cluster_id, offset = _read_string(body, offset)
        (controller_id,) = struct.unpack_from(">i", body, offset)
    if not brokers:
        raise ProbeError("no broker registered yet")
    if controller_id < 0:
        raise ProbeError("no active controller yet")
    return f"cluster {cluster_id}, brokers {', '.join(brokers)}, controller {controller_id}"


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else "127.0.0.1:9092"
    host, _, port = address.rpartition(":")
    try:
        print(probe(host, int(port)))
    except (OSError, ProbeError, struct.error) as exc:
        print(f"kafka not ready at {address}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
