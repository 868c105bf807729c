"""Free loopback ports for the servers a test starts, and whether one is listening."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST_PORT = 10_000
PICK = random.SystemRandom()  # not the random module's generator, which a seeded test may have made predictable


def ephemeral_ports() -> range:
    """The ports the kernel hands to outgoing connections."""
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def free_port(count: int = 1) -> int:
    """A free loopback port (the first of ``count``) below the kernel's ephemeral range.

    A port the kernel picked for us (bind to port 0) comes from the range it also gives to outgoing connections, so
    between the pick and a server's bind a client socket (a node's distribution link, a service's AMQP connection)
    could take it: seen here as a cluster node failing with eaddrinuse. Below that range only servers bind.
    """
    below = ephemeral_ports().start
    while True:
        first = PICK.randrange(LOWEST_PORT, below - count)
        if all(_bindable(port) for port in range(first, first + count)):
            return first


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_range(count: int, avoid: set[int]) -> int:
    """The first of ``count`` consecutive free ports, none of them in ``avoid``."""
    while True:
        first = free_port(count)
        ports = range(first, first + count)
        if not avoid.intersection(ports) and not any(port_open(port) for port in ports):
            return first


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
