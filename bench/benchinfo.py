"""What every benchmark prints about when and where it ran.

The machine the numbers in docs/benchmarks.md come from is shared, so a
table is only worth as much as the load it was measured under: each bench
prints the time of day and the load average when it starts and when it
ends, and the statistics helpers here report the median of every sample
with its spread, never the best one.
"""

import os
import statistics
import time


def stamp():
    """'2026-12-04 13:24 UTC, load average 0.19 0.54 0.70, 2 cores'."""
    la = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average "
            f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f}, {os.cpu_count()} cores")


def spread(xs, fmt="{:.2f}"):
    """'median (min-max)' of every sample in xs."""
    return (f"{fmt.format(statistics.median(xs))} "
            f"({fmt.format(min(xs))}-{fmt.format(max(xs))})")


def table(head, rows):
    """A markdown table that can be pasted into docs/benchmarks.md as is."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
