"""Delivery accounting: what each subscriber should have received, and what it did.

The contract promises each subscriber every message of its channels once,
in seq order. The load tool records, per subscriber and stream (a channel
name, ``""`` for the lobby), every seq of the run's own messages that
arrives, and the seqs the senders were acknowledged. At the end:

- *lost*: acknowledged seqs a subscriber of that stream never received;
- *duplicated*: a seq received again by the same subscriber;
- *out of order*: a seq received after a higher one (a late arrival);
- *unacknowledged*: a delivered seq whose sender never got an ``ack``.

Only messages sent while a subscriber was connected count as expected for
it, which holds in every scenario: all subscribers connect before sending
starts and stay until the drain ends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


class Track:
    """One subscriber's view of one stream; ``record`` runs once per delivery, so it stays small."""

    __slots__ = ("duplicated", "highest", "out_of_order", "seen")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.highest = 0
        self.duplicated = 0
        self.out_of_order = 0

    def record(self, seq: int) -> None:
        seen = self.seen
        if seq in seen:
            self.duplicated += 1
            return
        seen.add(seq)
        if seq < self.highest:
            self.out_of_order += 1
        else:
            self.highest = seq


@dataclass
class Tally:
    expected: int = 0  # acknowledged messages x their stream's subscribers
    delivered: int = 0  # every delivery of a run message, duplicates included
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unacknowledged: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.unacknowledged)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Ledger:
    """All subscribers' tracks plus the acknowledged seqs of each stream."""

    def __init__(self) -> None:
        self._tracks: dict[tuple[object, str], Track] = {}
        self._subscribers: dict[str, list[object]] = {}
        self._acked: dict[str, set[int]] = {}

    def subscribe(self, subscriber: object, stream: str) -> Track:
        """Declare that ``subscriber`` must receive every acknowledged message of ``stream``."""
        key = (subscriber, stream)
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = Track()
            self._subscribers.setdefault(stream, []).append(subscriber)
        return track

    def acked(self, stream: str, seq: int) -> None:
        self._acked.setdefault(stream, set()).add(seq)

    def acked_count(self) -> int:
        return sum(len(seqs) for seqs in self._acked.values())

    def tally(self) -> Tally:
        result = Tally()
        for stream, subscribers in self._subscribers.items():
            acked = self._acked.get(stream, set())
            for subscriber in subscribers:
                track = self._tracks[(subscriber, stream)]
                result.expected += len(acked)
                result.delivered += len(track.seen) + track.duplicated
                result.lost += len(acked - track.seen)
                result.duplicated += track.duplicated
                result.out_of_order += track.out_of_order
                result.unacknowledged += len(track.seen - acked)
        return result
