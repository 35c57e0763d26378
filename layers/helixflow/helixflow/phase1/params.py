"""Phase 1 parameters, and what is decided once per sample before any batch is processed (the adapter).

Adapters: given sequences are matched at every position with substitutions only, at most
floor(0.1 x overlap) of them and an overlap of at least 3 bases (cutadapt's defaults without indels; indels in an
adapter are rare on Illumina and the substitution-only scan is several times faster). Single-end auto-detection
(``detect_adapter``) tries the known Illumina TruSeq, Nextera and small-RNA adapters on the first 100,000 reads
and takes the one found (whole, or as a prefix of >= 8 bases at the 3' end) in the most reads, if that is at
least 0.1% of them and 10 reads; random sequence matches in about 0.01%. Detection runs once per sample before
chunking, so every chunk trims with the same sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from helixflow.phase1.kernels import adapter, trim
from helixflow.phase1.reader import iter_batches, whole_file

KNOWN_ADAPTERS = {
    "Illumina TruSeq Read 1": "AGATCGGAAGAGCACACGTCTGAACTCCAGTCA",
    "Illumina TruSeq Read 2": "AGATCGGAAGAGCGTCGTGTAGGGAAAGAGTGT",
    "Nextera / Illumina DNA Prep": "CTGTCTCTTATACACATCT",
    "Illumina Small RNA 3'": "TGGAATTCTCGGGTGCCAAGG",
}
DETECT_READS = 100_000
DETECT_MIN_OVERLAP = 8
DETECT_MIN_FRACTION = 0.001
DETECT_MIN_READS = 10


@dataclass(frozen=True)
class Params:
    adapter: str | None = None
    adapter2: str | None = None
    detect_adapter: bool = True
    adapter_min_overlap: int = 3
    adapter_error_rate: float = 0.1
    quality: int = 20
    """3' sliding-window cut: minimum mean Phred of the window (0 = off)."""
    window: int = 4
    quality_front: int = 0
    """5' sliding-window cut (0 = off)."""
    window_front: int = 4
    poly_g: int = 0
    """Minimum poly-G run to trim at the 3' end (0 = off; 10 is fastp's)."""
    poly_x: int = 0
    qualified_quality: int = 15
    unqualified_percent: int = 40
    """Low-quality filter: drop reads with more than this percent of bases below ``qualified_quality`` (-1 = off)."""
    n_limit: int = 5
    min_length: int = 15
    max_length: int = 0
    overlap_require: int = 30
    overlap_diff_limit: int = 5
    overlap_diff_percent: int = 20
    embeddings: bool = True

    def kernel_config(self) -> np.ndarray:
        """The options the trimming kernels read, in the slots ``kernels.trim`` names."""
        cfg = np.zeros(trim.CFG_SIZE, dtype=np.int64)
        for slot, value in ((trim.FRONT_QUALITY, self.quality_front), (trim.FRONT_WINDOW, self.window_front),
                            (trim.TAIL_QUALITY, self.quality), (trim.TAIL_WINDOW, self.window),
                            (trim.POLY_G_MIN, self.poly_g), (trim.POLY_X_MIN, self.poly_x),
                            (trim.ADAPTER_MIN_OVERLAP, self.adapter_min_overlap),
                            (trim.QUALIFIED_QUALITY, self.qualified_quality),
                            (trim.UNQUALIFIED_PERCENT, self.unqualified_percent), (trim.N_LIMIT, self.n_limit),
                            (trim.MIN_LENGTH, self.min_length), (trim.MAX_LENGTH, self.max_length),
                            (trim.OVERLAP_REQUIRE, self.overlap_require),
                            (trim.OVERLAP_DIFF_LIMIT, self.overlap_diff_limit),
                            (trim.OVERLAP_DIFF_PERCENT, self.overlap_diff_percent)):
            cfg[slot] = value
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)


def adapter_array(seq: str | None) -> np.ndarray:
    return np.frombuffer((seq or "").upper().encode(), dtype=np.uint8)


def detect_adapter(path: str, reads: int = DETECT_READS) -> str | None:
    """The known adapter with the most evidence in the first ``reads`` reads (see the module docstring)."""
    hits = dict.fromkeys(KNOWN_ADAPTERS.values(), 0)
    seen = 0
    for batch in iter_batches(whole_file(path), decompress_thread=False):
        take = min(batch.n, reads - seen)
        for sequence in hits:
            hits[sequence] += adapter.count_adapter_hits(batch.data, batch.seq_start[:take], batch.seq_len[:take],
                                                         adapter_array(sequence), DETECT_MIN_OVERLAP, 0.1)
        seen += take
        if seen >= reads:
            break
    if not seen:
        return None
    best = max(hits, key=lambda a: (hits[a], a))
    if hits[best] >= max(DETECT_MIN_READS, DETECT_MIN_FRACTION * seen):
        return best
    return None


def resolve_params(params: Params, r1: str, r2: str | None = None) -> Params:
    """Params every chunk of the sample must share: the auto-detected adapter (single-end only; pairs are cut
    by their overlap) is decided here, once."""
    if r2 is None and params.adapter is None and params.detect_adapter:
        return replace(params, adapter=detect_adapter(r1), detect_adapter=False)
    return replace(params, detect_adapter=False)
