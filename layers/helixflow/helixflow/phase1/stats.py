"""Mergeable Phase 1 statistics: integer histograms and counters that add, and two hash samples that merge exactly.

Every statistic of a file is a function of these integers, so the statistics merged from any record-aligned
split of the file equal those of the whole file bit for bit.

Duplication (``HashSample`` over sequence hashes): the reads' sequences (R1+R2 for pairs) are hashed
(``seq.hashing.hash_bytes``); distinct hashes whose top ``level`` bits are zero are counted exactly, the level
rising whenever more than ``capacity`` distinct hashes are kept. The kept hashes are a uniform random sample of
the distinct sequences, each with its exact copy number, so the duplication rate is estimated as
``1 - distinct / reads`` over the sample and the histogram of copy numbers is the sample's. With the default
capacity of 2^16 distinct sequences the rate's standard error is below 0.4 percentage points at any depth, and
the estimate is exact when the file has fewer distinct sequences than the capacity. Merging takes the higher
level, drops what it excludes and adds the counts; the result is identical to a single pass (each part keeps
every hash the whole-file pass keeps, because each part has at most as many distinct hashes at every level).

Overrepresented sequences (``ReadSample`` over read-id hashes): reads whose id hash has its top ``level`` bits
zero are kept with the first ``PREFIX`` bases of their sequence (the same exact-merge rule, capacity 2^15 reads).
A prefix that makes up at least 0.1% of the sample (and at least 10 sampled reads) is reported, with its count
scaled to the whole input. The sample is exact for inputs smaller than the capacity.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import numpy as np

from helixflow.phase1.kernels import qc, sampling
from helixflow.phase1.kernels.quality import QUAL_BINS

PREFIX = 50
DUPLICATION_CAPACITY = 1 << 16
READ_SAMPLE_CAPACITY = 1 << 15
OVERREPRESENTED_FRACTION = 0.001
OVERREPRESENTED_MIN_SAMPLED = 10


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    if a.shape[0] >= rows:
        return a
    pad = np.zeros((rows - a.shape[0],) + a.shape[1:], dtype=a.dtype)
    return np.concatenate([a, pad])


def _enc(a: np.ndarray) -> dict:
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode()}


def _dec(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["data"]), dtype=d["dtype"]).reshape(d["shape"]).copy()


@dataclass
class ReadStats:
    """Histograms of one mate at one stage (before or after filtering)."""

    base_counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.int64))
    base_qual_sum: np.ndarray = field(default_factory=lambda: np.zeros((0, 5), np.int64))
    qual_hist: np.ndarray = field(default_factory=lambda: np.zeros((0, QUAL_BINS), np.int64))
    len_hist: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    mean_qual_hist: np.ndarray = field(default_factory=lambda: np.zeros(QUAL_BINS, np.int64))

    ARRAYS = ("base_counts", "base_qual_sum", "qual_hist", "len_hist", "mean_qual_hist")

    def ensure_length(self, max_len: int) -> None:
        if self.base_counts.shape[0] < max_len:
            self.base_counts = _pad_rows(self.base_counts, max_len)
            self.base_qual_sum = _pad_rows(self.base_qual_sum, max_len)
            self.qual_hist = _pad_rows(self.qual_hist, max_len)
            self.len_hist = _pad_rows(self.len_hist, max_len + 1)

    def merge(self, other: "ReadStats") -> "ReadStats":
        rows = max(self.base_counts.shape[0], other.base_counts.shape[0])
        out = ReadStats()
        for name in ("base_counts", "base_qual_sum", "qual_hist"):
            setattr(out, name, _pad_rows(getattr(self, name), rows) + _pad_rows(getattr(other, name), rows))
        out.len_hist = _pad_rows(self.len_hist, rows + 1) + _pad_rows(other.len_hist, rows + 1)
        out.mean_qual_hist = self.mean_qual_hist + other.mean_qual_hist
        return out

    # derived values ------------------------------------------------------------------------------------
    @property
    def reads(self) -> int:
        return int(self.len_hist.sum())

    @property
    def bases(self) -> int:
        return int((self.len_hist * np.arange(self.len_hist.shape[0])).sum())

    def bases_at_least(self, q: int) -> int:
        return int(self.qual_hist[:, q:].sum())

    @property
    def gc_bases(self) -> int:
        return int(self.base_counts[:, 1:3].sum())

    @property
    def n_bases(self) -> int:
        return int(self.base_counts[:, 4].sum())

    @property
    def max_length(self) -> int:
        nz = np.flatnonzero(self.len_hist)
        return int(nz[-1]) if nz.size else 0

    def to_dict(self) -> dict:
        return {name: _enc(getattr(self, name)) for name in self.ARRAYS}

    @classmethod
    def from_dict(cls, d: dict) -> "ReadStats":
        return cls(**{name: _dec(d[name]) for name in cls.ARRAYS})


def add_before_after(before: ReadStats, after: ReadStats, data, seq_start, qual_start, lengths, front, kept,
                     selected) -> None:
    """One mate's batch: every read into ``before``, the ``selected`` reads' trimmed spans
    ``[front, front + kept)`` into ``after`` (in one pass: ``qc.qc_before_after``)."""
    if lengths.shape[0] == 0:
        return
    before.ensure_length(int(lengths.max()))
    after.ensure_length(int(kept.max()))
    qc.qc_before_after(data, seq_start, qual_start, lengths, front, kept, selected, before.base_counts,
                       before.base_qual_sum, before.qual_hist, before.len_hist, before.mean_qual_hist,
                       after.base_counts, after.base_qual_sum, after.qual_hist, after.len_hist, after.mean_qual_hist)


class HashSample:
    """Exact counts of a hash-threshold sample of distinct hashes (see the module docstring)."""

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity = capacity or DUPLICATION_CAPACITY
        size = 1 << int(np.ceil(np.log2(2 * capacity)))
        self._keys = np.zeros(size, np.uint64)
        self._counts = np.zeros(size, np.int64)
        self._state = np.zeros(2, np.int64)

    def add(self, hashes: np.ndarray) -> None:
        sampling.count_sampled(hashes, self._keys, self._counts, self._state, self.capacity)

    def entries(self) -> tuple[int, np.ndarray, np.ndarray]:
        used = self._counts != 0
        order = np.argsort(self._keys[used])
        return int(self._state[0]), self._keys[used][order], self._counts[used][order]

    def merge(self, other: "HashSample") -> "HashSample":
        level_a, keys_a, counts_a = self.entries()
        level_b, keys_b, counts_b = other.entries()
        level = max(level_a, level_b)
        keys = np.concatenate([keys_a, keys_b])
        counts = np.concatenate([counts_a, counts_b])
        keep = _sampled_mask(keys, level)
        unique, inverse = np.unique(keys[keep], return_inverse=True)
        summed = np.bincount(inverse, weights=counts[keep], minlength=unique.shape[0]).astype(np.int64)
        while unique.shape[0] > self.capacity:
            level += 1
            keep = _sampled_mask(unique, level)
            unique, summed = unique[keep], summed[keep]
        out = HashSample(self.capacity)
        out._state[0] = level
        out._insert_exact(unique, summed)
        return out

    def _insert_exact(self, keys: np.ndarray, counts: np.ndarray) -> None:
        mask = self._keys.shape[0] - 1
        for key, count in zip(keys.tolist(), counts.tolist()):  # bounded by capacity
            slot = key & mask
            while self._counts[slot] != 0:
                slot = (slot + 1) & mask
            self._keys[slot] = key
            self._counts[slot] = count
        self._state[1] = keys.shape[0]

    def duplication(self, max_level: int = 100) -> tuple[float, list[int]]:
        """(duplication rate, histogram: index i = distinct sequences seen i+1 times, the last bin open)."""
        _, _, counts = self.entries()
        if counts.size == 0:
            return 0.0, [0] * max_level
        rate = 1.0 - counts.shape[0] / float(counts.sum())
        hist = np.bincount(np.minimum(counts, max_level) - 1, minlength=max_level)
        return rate, hist.astype(int).tolist()

    def to_dict(self) -> dict:
        level, keys, counts = self.entries()
        return {"capacity": self.capacity, "level": level, "keys": _enc(keys), "counts": _enc(counts)}

    @classmethod
    def from_dict(cls, d: dict) -> "HashSample":
        out = cls(d["capacity"])
        out._state[0] = d["level"]
        out._insert_exact(_dec(d["keys"]), _dec(d["counts"]))
        return out


def _sampled_mask(hashes: np.ndarray, level: int) -> np.ndarray:
    if level == 0:
        return np.ones(hashes.shape[0], dtype=bool)
    return (hashes >> np.uint64(64 - level)) == 0


class ReadSample:
    """Reads sampled by their id hash, with their sequence prefix (see the module docstring)."""

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity or READ_SAMPLE_CAPACITY
        self.level = 0
        self.hashes = np.zeros(0, np.uint64)
        self.prefixes = np.zeros((0, PREFIX), np.uint8)

    def add(self, name_hashes, data, seq_start, lengths) -> None:
        keep = np.flatnonzero(_sampled_mask(name_hashes, self.level))
        if keep.size == 0:
            return
        cols = np.arange(PREFIX)
        lens = np.minimum(lengths[keep], PREFIX)
        idx = seq_start[keep][:, None] + np.minimum(cols[None, :], np.maximum(lens[:, None] - 1, 0))
        rows = np.where(cols[None, :] < lens[:, None], data[idx], 0).astype(np.uint8)
        self._extend(name_hashes[keep], rows)

    def _extend(self, hashes, rows) -> None:
        self.hashes = np.concatenate([self.hashes, hashes])
        self.prefixes = np.concatenate([self.prefixes, rows])
        while self.hashes.shape[0] > self.capacity:
            self.level += 1
            keep = _sampled_mask(self.hashes, self.level)
            self.hashes, self.prefixes = self.hashes[keep], self.prefixes[keep]

    def merge(self, other: "ReadSample") -> "ReadSample":
        out = ReadSample(self.capacity)
        out.level = max(self.level, other.level)
        keep_a = _sampled_mask(self.hashes, out.level)
        keep_b = _sampled_mask(other.hashes, out.level)
        out._extend(np.concatenate([self.hashes[keep_a], other.hashes[keep_b]]),
                    np.concatenate([self.prefixes[keep_a], other.prefixes[keep_b]]))
        return out

    def overrepresented(self, total_reads: int) -> dict[str, int]:
        """{prefix: estimated reads} for prefixes at >= 0.1% of the sample, most frequent first."""
        n = self.hashes.shape[0]
        if n == 0:
            return {}
        rows = np.ascontiguousarray(self.prefixes).view(np.dtype((np.void, PREFIX))).ravel()
        unique, counts = np.unique(rows, return_counts=True)
        threshold = max(OVERREPRESENTED_MIN_SAMPLED, OVERREPRESENTED_FRACTION * n)
        hits = np.flatnonzero(counts >= threshold)
        hits = hits[np.argsort(-counts[hits], kind="stable")]
        out = {}
        for i in hits.tolist():  # a handful of sequences
            seq = bytes(unique[i]).rstrip(b"\0").decode()
            out[seq] = int(round(counts[i] * total_reads / n))
        return out

    def to_dict(self) -> dict:
        order = np.lexsort(self.prefixes.T[::-1].tolist() + [self.hashes]) if self.hashes.size else np.zeros(0, int)
        return {"capacity": self.capacity, "level": self.level, "hashes": _enc(self.hashes[order]),
                "prefixes": _enc(self.prefixes[order])}

    @classmethod
    def from_dict(cls, d: dict) -> "ReadSample":
        out = cls(d["capacity"])
        out.level = d["level"]
        out.hashes = _dec(d["hashes"])
        out.prefixes = _dec(d["prefixes"])
        return out


@dataclass
class TrimStats:
    """Counters of the trimming and filtering step (per pair for paired input, per read for single)."""

    status_counts: np.ndarray = field(default_factory=lambda: np.zeros(5, np.int64))
    adapter_reads: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int64))
    adapter_bases: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int64))
    adapter_position_hist: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    insert_size_hist: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    insert_unknown: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))

    ARRAYS = ("status_counts", "adapter_reads", "adapter_bases", "adapter_position_hist", "insert_size_hist",
              "insert_unknown")

    def add_adapter(self, mate: int, adapter_at: np.ndarray, adapter_bases: np.ndarray) -> None:
        """``adapter_at``: adapter start in the read (-1: none); ``adapter_bases``: bases the cut removed."""
        found = adapter_at >= 0
        self.adapter_reads[mate] += int(found.sum())
        self.adapter_bases[mate] += int(adapter_bases.sum())
        if found.any():
            hist = np.bincount(adapter_at[found])
            self.adapter_position_hist = _pad_rows(self.adapter_position_hist, hist.shape[0])
            self.adapter_position_hist[: hist.shape[0], mate] += hist

    def add_inserts(self, insert_size: np.ndarray) -> None:
        known = insert_size >= 0
        self.insert_unknown[0] += int((~known).sum())
        if known.any():
            hist = np.bincount(insert_size[known])
            self.insert_size_hist = _pad_rows(self.insert_size_hist, hist.shape[0])
            self.insert_size_hist[: hist.shape[0]] += hist

    def merge(self, other: "TrimStats") -> "TrimStats":
        out = TrimStats()
        for name in self.ARRAYS:
            a, b = getattr(self, name), getattr(other, name)
            rows = max(a.shape[0], b.shape[0])
            setattr(out, name, _pad_rows(a, rows) + _pad_rows(b, rows))
        return out

    def to_dict(self) -> dict:
        return {name: _enc(getattr(self, name)) for name in self.ARRAYS}

    @classmethod
    def from_dict(cls, d: dict) -> "TrimStats":
        return cls(**{name: _dec(d[name]) for name in cls.ARRAYS})


@dataclass
class EmbeddingStats:
    reads: int = 0
    zero_vectors: int = 0
    valid_kmer_hist: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def add(self, valid_kmers: np.ndarray) -> None:
        self.reads += int(valid_kmers.shape[0])
        self.zero_vectors += int((valid_kmers == 0).sum())
        if valid_kmers.size:
            hist = np.bincount(valid_kmers)
            self.valid_kmer_hist = _pad_rows(self.valid_kmer_hist, hist.shape[0])
            self.valid_kmer_hist[: hist.shape[0]] += hist

    def merge(self, other: "EmbeddingStats") -> "EmbeddingStats":
        rows = max(self.valid_kmer_hist.shape[0], other.valid_kmer_hist.shape[0])
        return EmbeddingStats(self.reads + other.reads, self.zero_vectors + other.zero_vectors,
                              _pad_rows(self.valid_kmer_hist, rows) + _pad_rows(other.valid_kmer_hist, rows))

    def to_dict(self) -> dict:
        return {"reads": self.reads, "zero_vectors": self.zero_vectors, "valid_kmer_hist": _enc(self.valid_kmer_hist)}

    @classmethod
    def from_dict(cls, d: dict) -> "EmbeddingStats":
        return cls(d["reads"], d["zero_vectors"], _dec(d["valid_kmer_hist"]))
