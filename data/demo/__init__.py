"""The demo world: a synthetic Ningbo at the real city's scale, deterministic for a seed.

`build_world(seed, scale)` is the one entry point; `REAL_COUNTS` holds the counts at scale 1
(every scaled count is `max(1, round(real * scale))`) and `BASE_DAY` the day the live
waybills run on.
"""

from data.demo._world import BASE_DAY, FIXED_COUNTS, REAL_COUNTS, build_world, scaled_count

__all__ = ["BASE_DAY", "FIXED_COUNTS", "REAL_COUNTS", "build_world", "scaled_count"]
