"""What a batch writes: trimmed FASTQ text and the packed columns of the embeddings table."""

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
        out[o] = 64
        o += 1
        for i in range(name_start[r], name_end[r]):
            out[o] = data[i]
            o += 1
        out[o] = 10
        o += 1
        s = seq_start[r] + front[r]
        for i in range(lengths[r]):
            out[o + i] = data[s + i]
        o += lengths[r]
        out[o] = 10
        out[o + 1] = 43
        out[o + 2] = 10
        o += 3
        s = qual_start[r] + front[r]
        for i in range(lengths[r]):
            out[o + i] = data[s + i]
        o += lengths[r]
        out[o] = 10
        o += 1
    return out


@njit(cache=True, nogil=True)
def gather_columns(data, name_start, name_end, seq_start, front, lengths, selected):
    """The selected reads' ids (Arrow string layout: data + int32 offsets; the id is the header up to the first
    whitespace) and trimmed sequences (data + int64 offsets, for the embedding)."""
    n = 0
    id_size = 0
    seq_size = 0
    for r in range(seq_start.shape[0]):
        if selected[r]:
            n += 1
            e = read_id_end(data, name_start[r], name_end[r])
            id_size += e - name_start[r]
            seq_size += lengths[r]
    ids = np.empty(id_size, dtype=np.uint8)
    seqs = np.empty(seq_size, dtype=np.uint8)
    id_off = np.zeros(n + 1, dtype=np.int32)
    seq_off = np.zeros(n + 1, dtype=np.int64)
    k = 0
    io = 0
    so = 0
    for r in range(seq_start.shape[0]):
        if not selected[r]:
            continue
        e = read_id_end(data, name_start[r], name_end[r])
        for i in range(name_start[r], e):
            ids[io] = data[i]
            io += 1
        s = seq_start[r] + front[r]
        for i in range(lengths[r]):
            seqs[so + i] = data[s + i]
        so += lengths[r]
        k += 1
        id_off[k] = io
        seq_off[k] = so
    return ids, id_off, seqs, seq_off
