"""The publish window: messages sent but not confirmed yet, and messages waiting for a channel.

Publishes are confirmed as a stream. Each sent message gets the channel's next sequence number; a confirm (ack or
nack, single or ``multiple``) takes the messages it covers out of the window. When the channel is lost, messages
that should go again (``resend``) move, in their order, to the front of the unsent queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Outgoing:
    """A message to publish. ``resend``: publish again after a reconnect (False when a redelivery recreates it);
    ``properties``: its pika ``BasicProperties``."""

    queue: str
    body: bytes
    on_confirmed: Callable[[], None] | None
    resend: bool
    properties: Any = None


class PublishWindow:
    """Unconfirmed messages by sequence number, and unsent ones in order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._unconfirmed: dict[int, Outgoing] = {}
        self._unsent: deque[Outgoing] = deque()
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._unconfirmed) + len(self._unsent)

    def has_room(self) -> bool:
        return len(self) < self.size

    def wait(self, message: Outgoing) -> None:
        """Keep ``message`` until a channel can take it."""
        self._unsent.append(message)

    def next_unsent(self) -> Outgoing | None:
        return self._unsent.popleft() if self._unsent else None

    def sent(self, message: Outgoing) -> None:
        self._sequence += 1
        self._unconfirmed[self._sequence] = message

    def confirmed(self, tag: int, multiple: bool) -> list[Outgoing]:
        """Take out the messages a confirm with ``tag`` covers."""
        if not multiple:
            message = self._unconfirmed.pop(tag, None)
            return [] if message is None else [message]
        covered = []
        while self._unconfirmed:
            sequence = next(iter(self._unconfirmed))
            if sequence > tag:
                break
            covered.append(self._unconfirmed.pop(sequence))
        return covered

    def channel_lost(self) -> None:
        """Sequence numbers restart on the next channel; what should go again goes first, in its order."""
        resent = [message for message in self._unconfirmed.values() if message.resend]
        self._unsent.extendleft(reversed(resent))
        self._unconfirmed.clear()
        self._sequence = 0
