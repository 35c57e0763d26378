"""The read-id rules, vectorised over many headers at once.

* Read id: the header text after '@' up to the first space or tab (what Phase 1 writes as ``read_id``).
* Mate id: the read id less a trailing ``/1`` or ``/2`` (older Illumina output names mates ``read/1`` and
  ``read/2``). Two records are mates when their mate ids are equal: the validator's ``PAIR_NAME_MISMATCH``
  check and Phase 2's pairing of R1/R2 rows both use ``mate_id_spans``.

Headers are given as byte ranges ``data[starts[i]:ends[i]]`` starting after the '@' (packed, or inside a block
of FASTQ text). numpy only, so the Validate Lambda can use it.
"""

from __future__ import annotations

import numpy as np

from helixflow.seq.packing import gather

_SPACE, _TAB, _LF = 32, 9, 10
_SLASH, _ONE, _TWO = ord("/"), ord("1"), ord("2")


def read_id_ends(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """End of the read id of each header: its first space or tab, else its end."""
    limit = int(ends.max()) if len(ends) else 0
    blanks = np.flatnonzero((data[:limit] == _SPACE) | (data[:limit] == _TAB))
    first_blank = np.append(blanks, limit)[np.searchsorted(blanks, starts)]
    return np.minimum(first_blank, ends)


def mate_id_spans(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of each header's mate id."""
    id_ends = read_id_ends(data, starts, ends)
    mate_suffix = ((id_ends - starts >= 2) & (data[np.maximum(id_ends - 2, 0)] == _SLASH)
                   & ((data[np.maximum(id_ends - 1, 0)] == _ONE) | (data[np.maximum(id_ends - 1, 0)] == _TWO)))
    return starts, id_ends - 2 * mate_suffix


def mate_ids(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    """Each header's mate id as text (invalid UTF-8 replaced)."""
    id_starts, id_ends = mate_id_spans(data, starts, ends)
    lengths = id_ends - id_starts
    # One decode and split for all ids ("\n" never occurs in a header) rather than a str per read.
    joined = np.insert(gather(data, id_starts, lengths), np.cumsum(lengths), np.uint8(_LF))
    return joined.tobytes().decode(errors="replace").split("\n")[:-1]


def read_id(header: bytes) -> bytes:
    """The read id of one header (text after '@')."""
    data = np.frombuffer(header, np.uint8)
    return header[:int(read_id_ends(data, np.zeros(1, np.int64), np.array([len(header)]))[0])]
