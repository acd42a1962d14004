"""Feed-health bookkeeping: a sliding-window rate and a ring of latency samples."""

from __future__ import annotations

from collections import deque

import numpy as np


class SlidingRate:
    """Events per second over the last `window_s` seconds, from whole-second buckets (the
    current, unfinished second counts too, so the figure moves as soon as events arrive)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = float(window_s)
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first

    def add(self, count: int, now: float) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        return sum(count for _, count in self._buckets) / self.window_s

    def _trim(self, now: float) -> None:
        oldest = int(now - self.window_s)
        while self._buckets and self._buckets[0][0] <= oldest:
            self._buckets.popleft()


class LatencyRing:
    """The newest `size` latency samples (seconds), written a whole batch at a time."""

    def __init__(self, size: int) -> None:
        self._values = np.empty(int(size), dtype="float64")
        self._next = 0
        self._filled = 0
        self.total = 0

    def add(self, latencies_s: np.ndarray) -> None:
        values = np.asarray(latencies_s, dtype="float64")[-len(self._values) :]
        n = len(values)
        if not n:
            return
        end = self._next + n
        if end <= len(self._values):
            self._values[self._next : end] = values
        else:
            split = len(self._values) - self._next
            self._values[self._next :] = values[:split]
            self._values[: n - split] = values[split:]
        self._next = end % len(self._values)
        self._filled = min(len(self._values), self._filled + n)
        self.total += n

    def values(self) -> np.ndarray:
        return self._values[: self._filled].copy()

    def clear(self) -> None:
        self._next = self._filled = 0

    def percentiles_ms(self, *qs: float) -> list[float | None]:
        if not self._filled:
            return [None for _ in qs]
        return [round(float(v) * 1000, 3) for v in np.percentile(self._values[: self._filled], qs)]
