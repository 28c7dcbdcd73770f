"""The live account of a launched grid: how many jobs are pending, running, done or failed.

On a terminal a table redrawn in place (rich); elsewhere (logs, CI) one line each time a count changes.
"""

from __future__ import annotations

import sys
import time

STATES = ("pending", "running", "done", "failed")


class Board:
    def __init__(self, ids: list[str], echo=print, live: bool | None = None) -> None:
        self.state = dict.fromkeys(ids, "pending")
        self.echo = echo
        self.start = time.monotonic()
        self._last: tuple | None = None
        self._live = None
        if live if live is not None else sys.stdout.isatty():
            from rich.live import Live

            self._live = Live(self.table(), refresh_per_second=2, transient=False)
            self._live.start()

    def set(self, job_id: str, state: str) -> None:
        self.state[job_id] = state

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for v in self.state.values() if v == s) for s in STATES}

    def table(self):
        from rich.table import Table

        t = Table(title=f"jobs ({time.monotonic() - self.start:.0f} s)")
        for s in (*STATES, "total"):
            t.add_column(s, justify="right")
        c = self.counts()
        t.add_row(*(str(c[s]) for s in STATES), str(len(self.state)))
        return t

    def show(self) -> None:
        if self._live is not None:
            self._live.update(self.table())
            return
        c = tuple(self.counts().values())
        if c != self._last:
            self._last = c
            self.echo(
                "jobs: "
                + ", ".join(f"{n} {s}" for s, n in zip(STATES, c))
                + f" ({time.monotonic() - self.start:.0f} s)"
            )

    def close(self) -> None:
        self.show()
        if self._live is not None:
            self._live.stop()
