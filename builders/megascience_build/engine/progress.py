"""One tqdm bar per stage (rows, rows/s, ETA), on stderr; silent when disabled."""
from __future__ import annotations

from tqdm.auto import tqdm


class RequestBar:
    """Requests of one model stage (cache hits count at once), added to as the stage asks for more."""

    def __init__(self, label: str, position: int):
        self._bar = tqdm(total=0, desc=f"{label} (requests)", unit="req", position=position, leave=True,
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
        self._requests: dict[str, RequestBar] = {}
        self._bars = {}
        if enabled:
            for pos, label in enumerate(labels):
                self._bars[label] = tqdm(total=totals.get(label), desc=label, unit="rows", position=pos,
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
