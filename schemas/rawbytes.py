"""The binary tensor form: raw little-endian bytes, as the Open Inference Protocol's binary
extension lays them out (BYTES elements are each a 4-byte little-endian length + the bytes).
"""

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

_LENGTH = struct.Struct("<I")


class RawError(ValueError):
    pass


def pack(array: npt.NDArray[Any], dtype: np.dtype[Any]) -> bytes:
    """Row-major little-endian bytes of `array` as `dtype` (object dtype: BYTES elements)."""
    if dtype.kind == "O":
        parts = []
        for index, item in enumerate(array.ravel()):
            try:
                data = item if isinstance(item, bytes) else str(item).encode()
            except UnicodeEncodeError as exc:
                raise RawError(f"BYTES element {index} is text that is not valid UTF-8") from exc
            parts += [_LENGTH.pack(len(data)), data]
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()


def unpack(raw: bytes, dtype: np.dtype[Any], count: int) -> npt.NDArray[Any]:
    """`count` elements of `dtype` from `raw`; RawError if the sizes disagree."""
    if dtype.kind == "O":
        return _unpack_bytes(raw, count)
    if len(raw) != count * dtype.itemsize:
        raise RawError(
            f"{count} elements of {dtype.itemsize} bytes need {count * dtype.itemsize} bytes, "
            f"raw has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)


def _unpack_bytes(raw: bytes, count: int) -> npt.NDArray[Any]:
    items: list[str] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise RawError("raw BYTES data ends inside a length prefix")
        (size,) = _LENGTH.unpack_from(raw, at)
        at += 4
        if at + size > len(raw):
            raise RawError(f"raw BYTES element {len(items)} needs {size} bytes past the end")
        try:
            items.append(raw[at : at + size].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise RawError(f"raw BYTES element {len(items)} is not valid UTF-8 text") from exc
        at += size
    if len(items) != count:
        raise RawError(f"{count} BYTES elements expected, raw has {len(items)}")
    array = np.empty(count, dtype=object)
    array[:] = items
    return array
