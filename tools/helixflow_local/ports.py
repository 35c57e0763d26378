"""Free loopback ports for daemons that bind their own (Ray, Slurm).

A port is chosen below the kernel's ephemeral range (``net.ipv4.ip_local_port_range``), where neither a
``bind(port 0)`` nor the local end of an outgoing connection of any other process can land on it. That matters
for a port bound long after it was chosen: an elastic Slurm node's slurmd binds its port only when Slurm powers
the node up, perhaps minutes later, while the tests beside it open thousands of client connections (boto3 to
moto, Ray's own), each on an ephemeral port that a port picked by the OS could equal. Only an explicit bind by
another process can still take a chosen port; a daemon cannot be handed a socket, so its start then fails loudly
and the caller reports that start as failed. Our own moto server avoids even that by holding the socket it binds
(stack._bound_moto_server).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Lowest port chosen: above the registered services a developer machine tends to run (databases, 8000-range
# servers), and well above Ray's own worker ports (10002-19999, which ``ray start`` takes by default).
LOWEST = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default where it cannot be read)."""
    try:
        low, high = map(int, _EPHEMERAL_RANGE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port no socket holds now, outside the ephemeral range where one can; else one the OS picks."""
    low = ephemeral_range()[0]
    count = low - LOWEST
    if count >= 1000:
        # From a random start, so that processes choosing at the same time rarely try the same ports.
        first = random.randrange(count)
        for step in range(count):
            port = LOWEST + (first + step) % count
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
