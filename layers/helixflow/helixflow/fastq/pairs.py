"""Mate files: the pairing defects and the lockstep check of two validated streams.

Two records are mates when their mate ids are equal (``helixflow.seq.read_ids``: the read id less a trailing
``/1`` or ``/2``). ``PAIR_NAME_MISMATCH`` and ``PAIR_COUNT_MISMATCH`` are built here, and only here, for the
validator and for Phase 2's pairing of R1/R2 FASTQ, so both name the same defect the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from helixflow.errors import InvalidFastq, Position

if TYPE_CHECKING:
    from helixflow.fastq.scan import Batch, Scanner


def pair_name_mismatch(record: int, first_id: str, second_id: str, first_file: str, second_file: str,
                       first_byte_offset: int, second_byte_offset: int) -> InvalidFastq:
    """The mates' ids differ at ``record`` (1-based); reported in the second file, at the header."""
    return InvalidFastq(
        f"record {record}: read id {first_id!r} in {first_file} does not match {second_id!r} in {second_file}",
        code="PAIR_NAME_MISMATCH", position=Position(second_file, record, 4 * record - 3, second_byte_offset),
        details={"first_id": first_id, "second_id": second_id, "first_byte_offset": first_byte_offset})


def pair_count_mismatch(records: tuple[int, int], files: tuple[str, str], longer_byte_offset: int) -> InvalidFastq:
    """One mate ends first; reported at the first record only the longer file has (its header offset)."""
    longer = 0 if records[0] > records[1] else 1
    record = records[1 - longer] + 1
    return InvalidFastq(
        f"record {record}: {files[1 - longer]} ends after {records[1 - longer]} records but {files[longer]} goes on",
        code="PAIR_COUNT_MISMATCH", position=Position(files[longer], record, 4 * record - 3, longer_byte_offset),
        details={"records": {files[0]: records[0], files[1]: records[1]}})


class _PendingIds:
    """Mate ids of one mate that the other mate has not reached yet."""

    def __init__(self, first_record: int = 1) -> None:
        self.first_record = first_record
        self.ids = np.empty(0, np.uint8)
        self.lengths = np.empty(0, np.int64)
        self.header_offsets = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, batch: Batch) -> None:
        self.ids = np.concatenate([self.ids, batch.ids])
        self.lengths = np.concatenate([self.lengths, batch.id_lengths])
        self.header_offsets = np.concatenate([self.header_offsets, batch.header_offsets])

    def drop(self, n: int) -> None:
        self.ids = self.ids[int(self.lengths[:n].sum()):]
        self.lengths = self.lengths[n:]
        self.header_offsets = self.header_offsets[n:]
        self.first_record += n

    def id_text(self, i: int) -> str:
        start = int(self.lengths[:i].sum())
        return bytes(self.ids[start:start + int(self.lengths[i])]).decode("utf-8", "replace")


def check_pair(first: Scanner, second: Scanner) -> None:
    """Run both mates in lockstep; raise the earliest defect of either file or of the pairing."""
    mates = (first, second)
    streams = [first.batches(), second.batches()]
    # Scanners of a chunk start past the file's first records (helixflow.fastq.chunked): count from there.
    pending = (_PendingIds(first.records + 1), _PendingIds(second.records + 1))
    seen = [first.records, second.records]  # records delivered per mate (file record numbers)
    ended = [False, False]
    failures: list[InvalidFastq | None] = [None, None]
    while True:
        _compare_ids(mates, pending)
        # Advance the mate that is behind; once one has stopped, the other only needs to catch up to it.
        if all(ended):
            break
        behind = 0 if (not ended[0] and (ended[1] or seen[0] <= seen[1])) else 1
        if ended[1 - behind] and seen[behind] > seen[1 - behind]:
            break
        try:
            batch = next(streams[behind])
        except StopIteration:
            ended[behind] = True
            continue
        except InvalidFastq as exc:
            ended[behind] = True
            failures[behind] = exc
            continue
        seen[behind] += batch.count
        pending[behind].add(batch)
    _compare_ids(mates, pending)

    # Earliest by record: a failure at record r in one mate, or a count mismatch where the shorter one ends.
    candidates: list[tuple[int, int, InvalidFastq]] = []
    for i, failure in enumerate(failures):
        if failure is not None:
            candidates.append((failure.position.record, i, failure))
    if seen[0] != seen[1]:
        longer = 0 if seen[0] > seen[1] else 1
        shorter_failed = failures[1 - longer] is not None
        if not shorter_failed or failures[1 - longer].position.record > seen[1 - longer] + 1:
            record = seen[1 - longer] + 1
            offset = int(pending[longer].header_offsets[record - pending[longer].first_record])
            candidates.append((record, 2, pair_count_mismatch((seen[0], seen[1]), (mates[0].name, mates[1].name),
                                                              offset)))
    if candidates:
        raise min(candidates, key=lambda c: (c[0], c[1]))[2]


def _compare_ids(mates: tuple[Scanner, Scanner], pending: tuple[_PendingIds, _PendingIds]) -> None:
    a, b = pending
    n = min(len(a), len(b))
    if not n:
        return
    la, lb = a.lengths[:n], b.lengths[:n]
    length_differs = la != lb
    first_mismatch = int(np.argmax(length_differs)) if length_differs.any() else n
    # Up to the first length difference the ids line up byte for byte.
    ends = np.cumsum(la[:first_mismatch])
    prefix = int(ends[-1]) if first_mismatch else 0
    differs = a.ids[:prefix] != b.ids[:prefix]
    if differs.any():
        first_mismatch = min(first_mismatch, int(np.searchsorted(ends, int(np.argmax(differs)), side="right")))
    if first_mismatch < n:
        record = a.first_record + first_mismatch
        name_a, name_b = a.id_text(first_mismatch), b.id_text(first_mismatch)
        raise pair_name_mismatch(record, name_a, name_b, mates[0].name, mates[1].name,
                                 int(a.header_offsets[first_mismatch]), int(b.header_offsets[first_mismatch]))
    a.drop(n)
    b.drop(n)
