"""A tiny progress bar on stderr (no dependency): ``[#####.....]  45%  4.5k/10k  3.2k/s  ETA 0:00:02``."""
from __future__ import annotations

import sys
import time


def _si(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.1f}{unit}"
    return f"{v:.0f}"


def _hms(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Redraws at most every ``interval`` seconds; ``enabled=None`` means "when the stream is a terminal". When
    it is not (a batch job's log) and ``log`` is given, one ``log`` line is written every ``log_interval``
    seconds and at the end instead."""

    def __init__(self, total: int, desc: str = "", *, done: int = 0, stream=None, enabled=None,
                 interval: float = 0.2, width: int = 28, log=None, log_interval: float = 30.0):
        self.total, self.desc, self.done = int(total), desc, int(done)
        self.stream = stream or sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = tty if enabled is None else bool(enabled)
        self.log = log if (enabled is None and not self.enabled) else None
        self.log_interval = log_interval
        self._last_log = time.perf_counter()
        self.interval, self.width = interval, width
        self._t0 = time.perf_counter()
        self._start = self.done
        self._last = 0.0

    def line(self) -> str:
        frac = self.done / self.total if self.total else 1.0
        n = int(round(frac * self.width))
        dt = time.perf_counter() - self._t0
        rate = (self.done - self._start) / dt if dt > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_s = _hms(eta) if eta == eta else "?"
        return (f"{self.desc} [{'#' * n}{'.' * (self.width - n)}] {100 * frac:3.0f}%  {_si(self.done)}/"
                f"{_si(self.total)}  {_si(rate)}/s  ETA {eta_s}")

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if self.log and now - self._last_log >= self.log_interval:
            self._last_log = now
            self.log(self.line().replace("#", "=").strip())
        if self.enabled and (now - self._last >= self.interval or self.done >= self.total):
            self._last = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self) -> None:
        if self.log:
            self.log(self.line().replace("#", "=").strip())
        if self.enabled:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
