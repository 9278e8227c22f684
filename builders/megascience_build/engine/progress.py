"""Progress on stderr: one tqdm bar per stage (rows, rows/s, ETA) on a terminal; a few plain lines per stage
when stderr is not a terminal (a log file or CI: no carriage-return walls); nothing when disabled."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

PLAIN_EVERY_S = 60.0     # how often a plain-line bar reports while a stage runs


class PlainBar:
    """The part of tqdm's interface the engine uses, written as lines: when a stage starts, at most every
    PLAIN_EVERY_S seconds while it runs, and when it ends."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", **_tqdm_options):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self._start = self._last = time.monotonic()
        self._closed = False

    def _line(self, what: str) -> None:
        elapsed = time.monotonic() - self._start
        of = f"/{self.total:,}" if self.total else ""
        rate = f", {self.n / elapsed:.1f} {self.unit}/s" if elapsed > 0 and self.n else ""
        print(f"[{self.desc}] {what}: {self.n:,}{of} {self.unit} in {elapsed:.0f} s{rate}", file=sys.stderr,
              flush=True)

    def update(self, n: int) -> None:
        self.n += n
        if time.monotonic() - self._last >= PLAIN_EVERY_S:
            self._last = time.monotonic()
            self._line("running")

    def reset(self, total: int | None = None) -> None:
        self.total, self.n = total, 0
        self._start = self._last = time.monotonic()
        print(f"[{self.desc}] started" + (f": {total:,} {self.unit}" if total else ""), file=sys.stderr, flush=True)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if not self._closed and self.n:
            self._line("done")
        self._closed = True


def make_bar(**options):
    """A tqdm bar on a terminal, a PlainBar otherwise."""
    return tqdm(**options) if sys.stderr.isatty() else PlainBar(**options)


def quiet_library_bars() -> None:
    """transformers' and the Hub client's own bars (weights loading, GGUF conversion) off when stderr is
    not a terminal: they only write carriage-return walls there."""
    if sys.stderr.isatty():
        return
    from huggingface_hub.utils import disable_progress_bars
    disable_progress_bars()          # transformers, imported later, takes its bar setting from here
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()


class RequestBar:
    """Requests of one model stage (cache hits count at once), added to as the stage asks for more."""

    def __init__(self, label: str, position: int):
        self._bar = make_bar(total=0, desc=f"{label} (requests)", unit="req", position=position, leave=True,
                             dynamic_ncols=True)

    def add_total(self, n: int) -> None:
        self._bar.total += n
        self._bar.refresh()

    def update(self, n: int) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


class StageBars:
    def __init__(self, labels: list[str], totals: dict[str, int | None], enabled: bool):
        self._enabled = enabled
        if enabled:
            quiet_library_bars()
        self._requests: dict[str, RequestBar] = {}
        self._bars = {}
        if enabled:
            for pos, label in enumerate(labels):
                self._bars[label] = make_bar(total=totals.get(label), desc=label, unit="rows", position=pos,
                                             leave=True, dynamic_ncols=True)

    def update(self, label: str, rows: int) -> None:
        bar = self._bars.get(label)
        if bar is not None:
            bar.update(rows)

    def start(self, label: str, total: int | None) -> None:
        """The stage starts now (its rate and ETA count from here); `total` rows if known."""
        bar = self._bars.get(label)
        if bar is not None:
            bar.reset(total=total)

    def finish(self, label: str) -> None:
        """The stage is done: freeze its bars (elapsed time and rate stop counting)."""
        for bar in (self._bars.get(label), self._requests.get(label)):
            if bar is not None:
                bar.close()

    def requests(self, label: str) -> RequestBar | None:
        """A request bar for a model stage (None when progress is off)."""
        if not self._enabled:
            return None
        if label not in self._requests:
            self._requests[label] = RequestBar(label, len(self._bars) + len(self._requests))
        return self._requests[label]

    def close(self) -> None:
        for bar in [*self._bars.values(), *self._requests.values()]:
            bar.close()
