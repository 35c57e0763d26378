"""Join Parquet files without decoding them: the files' row groups, byte for byte one after the other, under one
new footer. MergeChunks uses it to join the chunks' embeddings parts by S3 copies (the pages never pass through
the function), as the reads' gzip members are joined.

A Parquet file is ``PAR1``, the row groups' pages, the footer (a Thrift compact-encoded ``FileMetaData``), the
footer's length (4 bytes, little-endian) and ``PAR1``. The footer locates every page by its absolute offset in the
file, so the joined footer is the parts' row groups with their offsets moved by where each part's pages now lie.
The footer is decoded generically (field ids and types, no schema of our own), so every field the writer wrote,
known to us or not, is written back unchanged; only the offsets below and the row counts are rewritten. Field ids
are those of the Parquet format's ``parquet.thrift``.

Pyarrow reads and writes footers but has no way to set a row group's offsets, hence this module.
"""

from __future__ import annotations

import struct
from typing import Any

from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TType
from thrift.transport.TTransport import TMemoryBuffer

MAGIC = b"PAR1"
TAIL_BYTES = 8  # the footer's length and the closing magic

# FileMetaData
_SCHEMA, _NUM_ROWS, _ROW_GROUPS = 2, 3, 4
_ENCRYPTION = (8, 9)  # encryption_algorithm, footer_signing_key_metadata
# RowGroup
_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
# ColumnChunk
_CC_FILE_PATH, _CC_FILE_OFFSET, _CC_META = 1, 2, 3
# The page index (its OffsetIndex holds absolute page offsets of its own) and per-column encryption.
_CC_REFUSED = {4: "offset index", 6: "column index", 8: "column encryption", 9: "column encryption"}
# ColumnMetaData: data_page_offset, index_page_offset, dictionary_page_offset, bloom_filter_offset
_CMD_OFFSETS = (9, 10, 11, 14)
_ORDINAL_MAX = 2**15 - 1  # RowGroup.ordinal is an i16


class NotJoinable(ValueError):
    """The parts cannot be joined by their bytes (different schemas, a page index, encryption)."""


def footer_span(tail: bytes, size: int) -> tuple[int, int]:
    """(start, length) of the footer of a file of ``size`` bytes whose last bytes are ``tail``."""
    if len(tail) < TAIL_BYTES or tail[-4:] != MAGIC:
        raise NotJoinable("not a plain Parquet file (no closing PAR1: encrypted footer or not Parquet)")
    (length,) = struct.unpack("<I", tail[-TAIL_BYTES:-4])
    start = size - TAIL_BYTES - length
    if start < len(MAGIC):
        raise NotJoinable(f"footer length {length} does not fit a file of {size} bytes")
    return start, length


def joined_tail(footers: list[bytes], body_sizes: list[int]) -> bytes:
    """The bytes that end the joined file: its footer, the footer's length and ``PAR1``. Part k's body (its bytes
    from 4 to its footer, ``body_sizes[k]`` of them) lies in the joined file after ``PAR1`` and the bodies before it."""
    if not footers or len(footers) != len(body_sizes):
        raise ValueError("one footer per body")
    parts = [_decode(footer) for footer in footers]
    first = parts[0]
    invariant = _without(first, {_NUM_ROWS, _ROW_GROUPS})
    row_groups: list[Any] = []
    rows = 0
    start = len(MAGIC)
    for index, part in enumerate(parts):
        if _without(part, {_NUM_ROWS, _ROW_GROUPS}) != invariant:
            raise NotJoinable(f"part {index}'s schema or file metadata differs from part 0's")
        if any(_field(part, fid) is not None for fid in _ENCRYPTION):
            raise NotJoinable(f"part {index} is encrypted")
        shift = start - len(MAGIC)
        for group in (_field(part, _ROW_GROUPS) or (TType.STRUCT, []))[1]:
            row_groups.append(_moved_row_group(group, shift, len(row_groups), index))
        rows += _field(part, _NUM_ROWS)
        start += body_sizes[index]
    joined = [field for field in first if field[0] not in (_NUM_ROWS, _ROW_GROUPS)]
    joined += [[_NUM_ROWS, TType.I64, rows], [_ROW_GROUPS, TType.LIST, (TType.STRUCT, row_groups)]]
    footer = _encode(sorted(joined, key=lambda field: field[0]))
    return footer + struct.pack("<I", len(footer)) + MAGIC


def _moved_row_group(group: list, shift: int, ordinal: int, part: int) -> list:
    moved = []
    for fid, ttype, value in group:
        if fid == _COLUMNS:
            value = (value[0], [_moved_column(column, shift, part) for column in value[1]])
        elif fid == _RG_FILE_OFFSET:
            value += shift
        elif fid == _RG_ORDINAL:
            continue  # set below: the row group's place in the joined file
        moved.append([fid, ttype, value])
    if ordinal <= _ORDINAL_MAX:  # optional; past an i16 it is left out rather than wrapped
        moved.append([_RG_ORDINAL, TType.I16, ordinal])
    return sorted(moved, key=lambda field: field[0])


def _moved_column(column: list, shift: int, part: int) -> list:
    moved = []
    for fid, ttype, value in column:
        if fid in _CC_REFUSED:
            raise NotJoinable(f"part {part} has a {_CC_REFUSED[fid]}")
        if fid == _CC_FILE_PATH:
            raise NotJoinable(f"part {part} keeps column data in another file")
        if fid == _CC_FILE_OFFSET and value:  # 0 means "no metadata outside the footer" and stays 0
            value += shift
        elif fid == _CC_META:
            value = [[f, t, v + shift if f in _CMD_OFFSETS else v] for f, t, v in value]
        moved.append([fid, ttype, value])
    return moved


def _field(struct_value: list, fid: int) -> Any:
    return next((value for f, _, value in struct_value if f == fid), None)


def _without(struct_value: list, fids: set[int]) -> list:
    return [field for field in struct_value if field[0] not in fids]


# Thrift compact protocol, generically: a struct is a list of [field id, type, value]; a list or set is
# (element type, [values]); a map is (key type, value type, [(key, value)]); binary fields stay bytes.

def _decode(footer: bytes) -> list:
    protocol = TCompactProtocol(TMemoryBuffer(footer))
    return _read(protocol, TType.STRUCT)


def _encode(struct_value: list) -> bytes:
    buffer = TMemoryBuffer()
    _write(TCompactProtocol(buffer), TType.STRUCT, struct_value)
    return buffer.getvalue()


_SCALAR_READ = {TType.BOOL: "readBool", TType.BYTE: "readByte", TType.I16: "readI16", TType.I32: "readI32",
                TType.I64: "readI64", TType.DOUBLE: "readDouble", TType.STRING: "readBinary", TType.UUID: "readUuid"}
_SCALAR_WRITE = {TType.BOOL: "writeBool", TType.BYTE: "writeByte", TType.I16: "writeI16", TType.I32: "writeI32",
                 TType.I64: "writeI64", TType.DOUBLE: "writeDouble", TType.STRING: "writeBinary",
                 TType.UUID: "writeUuid"}


def _read(protocol: TCompactProtocol, ttype: int) -> Any:
    if ttype in _SCALAR_READ:
        return getattr(protocol, _SCALAR_READ[ttype])()
    if ttype == TType.STRUCT:
        fields = []
        protocol.readStructBegin()
        while True:
            _, field_type, fid = protocol.readFieldBegin()
            if field_type == TType.STOP:
                break
            fields.append([fid, field_type, _read(protocol, field_type)])
            protocol.readFieldEnd()
        protocol.readStructEnd()
        return fields
    if ttype in (TType.LIST, TType.SET):
        element_type, size = protocol.readListBegin() if ttype == TType.LIST else protocol.readSetBegin()
        values = [_read(protocol, element_type) for _ in range(size)]
        protocol.readListEnd() if ttype == TType.LIST else protocol.readSetEnd()
        return element_type, values
    if ttype == TType.MAP:
        key_type, value_type, size = protocol.readMapBegin()
        pairs = [(_read(protocol, key_type), _read(protocol, value_type)) for _ in range(size)]
        protocol.readMapEnd()
        return key_type, value_type, pairs
    raise NotJoinable(f"unknown Thrift type {ttype} in the footer")


def _write(protocol: TCompactProtocol, ttype: int, value: Any) -> None:
    if ttype in _SCALAR_WRITE:
        getattr(protocol, _SCALAR_WRITE[ttype])(value)
    elif ttype == TType.STRUCT:
        protocol.writeStructBegin(None)
        for fid, field_type, field_value in value:
            protocol.writeFieldBegin(None, field_type, fid)
            _write(protocol, field_type, field_value)
            protocol.writeFieldEnd()
        protocol.writeFieldStop()
        protocol.writeStructEnd()
    elif ttype in (TType.LIST, TType.SET):
        element_type, values = value
        (protocol.writeListBegin if ttype == TType.LIST else protocol.writeSetBegin)(element_type, len(values))
        for element in values:
            _write(protocol, element_type, element)
        protocol.writeListEnd() if ttype == TType.LIST else protocol.writeSetEnd()
    else:
        key_type, value_type, pairs = value
        protocol.writeMapBegin(key_type, value_type, len(pairs))
        for key, item in pairs:
            _write(protocol, key_type, key)
            _write(protocol, value_type, item)
        protocol.writeMapEnd()
