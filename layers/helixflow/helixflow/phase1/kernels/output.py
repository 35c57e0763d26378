"""What a batch writes: trimmed FASTQ text and the read ids of the embeddings table."""

from __future__ import annotations

import numpy as np
from numba import njit

@njit(cache=True, nogil=True, inline="always")
def read_id_end(data, start, end):
    """End of the read id of the header ``data[start:end]``: its first space or tab (the rule of
    ``helixflow.seq.read_ids``, in the form a kernel can call per record)."""
    e = start
    while e < end and data[e] != 32 and data[e] != 9:
        e += 1
    return e


@njit(cache=True, nogil=True)
def render_fastq(data, name_start, name_end, seq_start, qual_start, front, lengths, selected):
    """FASTQ text of the selected reads, trimmed to [front, front + length); headers are kept whole."""
    size = 0
    for r in range(seq_start.shape[0]):
        if selected[r]:
            size += (name_end[r] - name_start[r]) + 2 * lengths[r] + 6
    out = np.empty(size, dtype=np.uint8)
    o = 0
    for r in range(seq_start.shape[0]):
        if not selected[r]:
            continue
        # Slice copies: an element loop over data[s + i] costs a sign check per byte.
        out[o] = 64
        o += 1
        name = name_end[r] - name_start[r]
        out[o:o + name] = data[name_start[r]:name_end[r]]
        o += name
        out[o] = 10
        o += 1
        n = lengths[r]
        s = seq_start[r] + front[r]
        out[o:o + n] = data[s:s + n]
        o += n
        out[o] = 10
        out[o + 1] = 43
        out[o + 2] = 10
        o += 3
        s = qual_start[r] + front[r]
        out[o:o + n] = data[s:s + n]
        o += n
        out[o] = 10
        o += 1
    return out


@njit(cache=True, nogil=True)
def gather_ids(data, name_start, name_end, selected):
    """The selected reads' ids in the Arrow string layout (data + int32 offsets): each header up to its first
    whitespace."""
    n = 0
    size = 0
    for r in range(name_start.shape[0]):
        if selected[r]:
            n += 1
            size += read_id_end(data, name_start[r], name_end[r]) - name_start[r]
    ids = np.empty(size, dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int32)
    k = 0
    o = 0
    for r in range(name_start.shape[0]):
        if not selected[r]:
            continue
        for i in range(name_start[r], read_id_end(data, name_start[r], name_end[r])):
            ids[o] = data[i]
            o += 1
        k += 1
        offsets[k] = o
    return ids, offsets
