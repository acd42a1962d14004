"""A sink for the tests: keeps every batch a feed hands over, lets a test wait for a count."""

from __future__ import annotations

import threading

import pandas as pd


class Batches:
    """Callable sink (on_pings / on_readings): batches in call order, from any thread."""

    def __init__(self) -> None:
        self.batches: list = []
        self._changed = threading.Condition()

    def __call__(self, batch) -> None:
        with self._changed:
            self.batches.append(batch)
            self._changed.notify_all()

    def count(self) -> int:
        return sum(len(b) for b in self.batches)

    def wait_for(self, n: int, timeout_s: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count() >= n, timeout_s)

    def frame(self) -> pd.DataFrame:
        """Every batch's rows (PingBatch or ReadingBatch .to_frame()), in call order."""
        return pd.concat([b.to_frame() for b in self.batches], ignore_index=True)

    def rows(self) -> list[tuple[str, int, float]]:
        """Readings as sorted (point_id, epoch_ms, value) tuples."""
        return sorted((p, t, v) for b in self.batches
                      for p, t, v in zip(b.point_id.tolist(), b.epoch_ms.tolist(), b.value.tolist()))
