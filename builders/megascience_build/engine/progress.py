"""One tqdm bar per stage (rows, rows/s, ETA), on stderr; silent when disabled."""
from __future__ import annotations

from tqdm.auto import tqdm


class StageBars:
    def __init__(self, labels: list[str], totals: dict[str, int | None], enabled: bool):
        self._bars = {}
        if enabled:
            for pos, label in enumerate(labels):
                self._bars[label] = tqdm(total=totals.get(label), desc=label, unit="rows", position=pos,
                                         leave=True, dynamic_ncols=True)

    def update(self, label: str, rows: int) -> None:
        bar = self._bars.get(label)
        if bar is not None:
            bar.update(rows)

    def set_total(self, label: str, total: int) -> None:
        bar = self._bars.get(label)
        if bar is not None and bar.total is None:
            bar.total = total
            bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
