"""The sender's settings: one frozen dataclass, filled from app.settings.Settings by the app.

Every figure here is an engineering default (no regulation fixes it)."""

from __future__ import annotations

from dataclasses import dataclass


class ChannelError(ValueError):
    """Bad input to the channels (a subscription, a delivery id, a message): one clear line."""


@dataclass(frozen=True)
class ChannelSettings:
    max_attempts: int = 6  # attempts before a delivery goes to the dead letters
    backoff_s: float = 2.0  # first retry after this; doubling each time (exponential backoff)
    backoff_max_s: float = 300.0  # never wait longer than this between attempts
    jitter: float = 0.25  # each wait is stretched by a random 0..jitter share, so retries do not come in step
    webhook_timeout_s: float = 10.0  # connect + answer of one HTTP attempt
    answer_max_chars: int = 500  # of a receiver's answer kept in the delivery log
    driver_levels: tuple[int, ...] = (1, 2)  # severities texted to the truck's terminal: red, orange
    driver_text_ttl_s: float = 3600.0  # a terminal not connected this long after the message: failed
    driver_answer_timeout_s: float = 10.0  # wait for the terminal's 0x0001 general response
    confirm_terminal_alarms: bool = True  # a signed terminal_alarm incident is confirmed to the terminal (0x8203)
    tick_s: float = 0.5  # the drain loop's period when idle
    lease_s: float = 15.0  # a sender whose heartbeat is older than this is taken over
    fanout_batch: int = 500  # outbox rows turned into deliveries per transaction
    channel_queue_max: int = 100  # deliveries handed to one channel's worker at a time

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ChannelError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("backoff_s", "backoff_max_s", "webhook_timeout_s", "driver_text_ttl_s",
                     "driver_answer_timeout_s", "tick_s", "lease_s"):
            if not getattr(self, name) > 0:
                raise ChannelError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.jitter <= 1:
            raise ChannelError(f"jitter must be within 0..1, got {self.jitter!r}")
        bad = [s for s in self.driver_levels if s not in (1, 2, 3, 4)]
        if bad:
            raise ChannelError(f"driver_levels are severities 1..4, got {bad}")

    def backoff(self, attempts: int, rand: float) -> float:
        """Seconds before the next attempt after `attempts` failed ones; rand in [0, 1)."""
        base = min(self.backoff_max_s, self.backoff_s * 2.0 ** max(0, attempts - 1))
        return base * (1.0 + self.jitter * rand)
