"""Cutting the token ids of many sentences into padded, length-sorted batches (for every backend)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class BatchPlan:
    """Token ids of many sentences, and how to cut them into padded, length-sorted batches.

    Sorting by length makes each batch pad to a similar length, which on a CPU
    saves more time than any other trick.  A batch holds at most ``batch_size``
    rows and ``batch_size * tokens_per_row`` padded tokens, so long sentences
    come in smaller batches and peak memory does not depend on the longest one.
    """

    def __init__(self, ids: list[list[int]], pad_id: int, batch_size: int = 64, tokens_per_row: int = 32) -> None:
        self.ids, self.pad_id = ids, pad_id
        self.budget, self.batch_size = batch_size * tokens_per_row, batch_size
        self.lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        self.order = np.argsort(self.lengths, kind="stable")

    def batches(self, rows: np.ndarray) -> Iterator[np.ndarray]:
        """Split ``rows`` (sorted by length) into batches within the row and token budgets."""
        start = 0
        while start < len(rows):
            end = min(start + self.batch_size, len(rows))
            # Sorted ascending, so the last row is the longest: shrink until it fits.
            while end - start > 1 and (end - start) * self.lengths[rows[end - 1]] > self.budget:
                end = start + max(1, self.budget // int(self.lengths[rows[end - 1]]))
            yield rows[start:end]
            start = end

    def pad(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        width = int(self.lengths[rows].max())
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, i in enumerate(rows):
            n = len(self.ids[i])
            input_ids[j, :n] = self.ids[i]
            mask[j, :n] = 1
        return input_ids, mask
