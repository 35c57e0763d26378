"""Free loopback ports for daemons that bind their own (Ray, Slurm).

The OS picks a port that is free now; between this probe and the daemon's bind another process can take it.
Our own moto server avoids that by holding the socket it binds (stack._bound_moto_server); a daemon cannot be
handed a socket, so its start fails loudly on a taken port and the caller reports that start as failed.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
