"""Ports chosen for the local daemons (Slurm, Ray) are free and never ones the kernel hands out by itself."""

from __future__ import annotations

import socket

from helixflow_local import ports


def test_a_chosen_port_is_free_and_below_the_ephemeral_range():
    """An elastic slurmd binds its port only when Slurm powers the node up: a port in the ephemeral range could by
    then be the local end of another process's connection (the cause of a power-up that never registered)."""
    low, _ = ports.ephemeral_range()
    chosen = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST <= port < low for port in chosen), chosen
    for port in chosen:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # nothing holds it


def test_a_port_held_by_a_socket_is_never_chosen(monkeypatch):
    held = []
    try:
        for port in range(ports.LOWEST, ports.LOWEST + 1000):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        # Only the held ports plus one free one remain to choose from.
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (ports.LOWEST + 1001, 60999))
        assert {ports.free_port() for _ in range(10)} == {ports.LOWEST + 1000}
    finally:
        for sock in held:
            sock.close()
