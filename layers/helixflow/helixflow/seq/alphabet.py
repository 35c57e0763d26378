"""The nucleotide alphabet: base codes and complements.

``BASE_CODE`` maps a byte to its 2-bit base code, A=0, C=1, G=2, T=3 in either case; every other byte (N, the
IUPAC ambiguity codes, anything else) maps to ``N_CODE`` = 4. The embedding, the minimizer index, the aligners
and the Phase 1 statistics all read bases through it, so they agree on what a base is.

``COMPLEMENT`` maps a byte to its complementary byte for A, C, G, T and N in either case (the case is kept);
every other byte maps to itself. ``reverse_complement`` applies it to a byte string.

Numba freezes module-level arrays as constants when a jitted function reads them, so kernels use these tables
directly.
"""

from __future__ import annotations

import numpy as np

N_CODE = 4

BASE_CODE = np.full(256, N_CODE, dtype=np.uint8)
for _code, _base in enumerate(b"ACGT"):
    BASE_CODE[_base] = _code
    BASE_CODE[_base | 0x20] = _code  # the lower-case letter

COMPLEMENT = np.arange(256, dtype=np.uint8)
for _base, _complement in zip(b"ACGTNacgtn", b"TGCANtgcan"):
    COMPLEMENT[_base] = _complement

_COMPLEMENT_TABLE = COMPLEMENT.tobytes()  # the same table in the form bytes.translate takes


def reverse_complement(sequence: bytes) -> bytes:
    return sequence.translate(_COMPLEMENT_TABLE)[::-1]
