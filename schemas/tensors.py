"""Open Inference Protocol (KServe v2) tensors and their numpy conversions."""

import math
from base64 import b64encode
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from schemas.errors import ErrorCode, PermanentError
from schemas.rawbytes import RawError, pack, unpack

MAX_TENSOR_NAME = 256  # characters
MAX_TENSOR_DIMS = 16


class TensorError(PermanentError, ValueError):
    """A tensor whose datatype, shape and data do not agree."""

    code = ErrorCode.INVALID_INPUT


class Datatype(StrEnum):
    BOOL = "BOOL"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return _DTYPES[self]

    @classmethod
    def from_numpy(cls, dtype: np.dtype[Any]) -> "Datatype":
        if dtype.kind in "USO":
            return cls.BYTES
        found = _FROM_NUMPY.get(dtype)
        if found is None:
            raise TensorError(f"numpy dtype {dtype} has no Open Inference Protocol datatype")
        return found


_NUMPY: dict[Datatype, str] = {
    Datatype.BOOL: "bool",
    Datatype.INT8: "int8",
    Datatype.INT16: "int16",
    Datatype.INT32: "int32",
    Datatype.INT64: "int64",
    Datatype.UINT8: "uint8",
    Datatype.UINT16: "uint16",
    Datatype.UINT32: "uint32",
    Datatype.UINT64: "uint64",
    Datatype.FP16: "float16",
    Datatype.FP32: "float32",
    Datatype.FP64: "float64",
    Datatype.BYTES: "object",
}
_DTYPES = {d: np.dtype(name) for d, name in _NUMPY.items()}
_FROM_NUMPY = {dtype: d for d, dtype in _DTYPES.items() if d is not Datatype.BYTES}


_INTEGER = "iu"
# numpy kinds that JSON data may come in as, per datatype: no conversion that changes a value
_ACCEPTS: dict[Datatype, str] = {
    **{d: _INTEGER for d in Datatype if d.name.startswith(("INT", "UINT"))},
    Datatype.BOOL: "b",
    Datatype.FP16: "iuf",
    Datatype.FP32: "iuf",
    Datatype.FP64: "iuf",
    Datatype.BYTES: "U",
}
_KIND_NAMES = {
    "b": "booleans",
    "i": "integers",
    "u": "integers",
    "f": "fractional numbers",
    "U": "strings",
    "O": "mixed or out-of-range values",
}


# JSON has no number for these: `data` spells them as protobuf's JSON mapping does
_SPELLED = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def json_numbers(values: npt.NDArray[Any]) -> list[Any]:
    """The elements of a flat numeric array as `data`: non-finite floats spelled."""
    data: list[Any] = values.tolist()
    if values.dtype.kind != "f" or np.isfinite(values).all():
        return data
    return [x if math.isfinite(x) else _spelling(x) for x in data]


def _spelled(items: list[Any]) -> list[Any]:
    """Nested `data` with its non-finite floats spelled."""
    return [
        _spelled(x)
        if isinstance(x, list)
        else _spelling(x)
        if isinstance(x, float) and not math.isfinite(x)
        else x
        for x in items
    ]


def _spelling(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _spelled_floats(data: list[Any]) -> npt.NDArray[np.float64] | None:
    """`data` with non-finite floats spelled, as float64; None if anything else is in it."""
    items = np.array(data, dtype=object)
    floats = np.empty(items.shape, dtype=np.float64)
    for index, item in np.ndenumerate(items):
        if isinstance(item, str) and item in _SPELLED:
            floats[index] = _SPELLED[item]
        elif isinstance(item, int | float) and not isinstance(item, bool):
            try:
                floats[index] = item
            except OverflowError:  # an int beyond any float: refused as the data is
                return None
        else:
            return None
    return floats


class Tensor(BaseModel):
    """A named tensor: `data` is row-major, flat or nested, with `shape` elements."""

    model_config = ConfigDict(
        frozen=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
        json_schema_extra={
            "examples": [
                {"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [0.1, 0.2, 0.3]}
            ]
        },
    )

    name: str = Field(min_length=1, max_length=MAX_TENSOR_NAME)
    datatype: Datatype
    shape: list[int] = Field(max_length=MAX_TENSOR_DIMS)
    data: list[Any] | None = Field(default=None, description="elements, row-major")
    raw: bytes | None = Field(
        default=None, description="or: the elements as little-endian bytes, base64 in JSON"
    )

    @field_serializer("raw", when_used="json-unless-none")
    def _standard_base64(self, raw: bytes) -> str:
        return b64encode(raw).decode()  # pydantic would write URL-safe base64; both are read

    @field_serializer("data", when_used="json-unless-none")
    def _non_finite_spelled(self, data: list[Any]) -> list[Any]:
        # in memory `data` keeps the floats themselves (a NaN's sign bit included)
        return _spelled(data) if self.datatype.numpy_dtype.kind == "f" else data

    @model_validator(mode="after")
    def _one_form(self) -> "Tensor":
        if (self.data is None) == (self.raw is None):
            raise ValueError("a tensor has either `data` or `raw`")
        return self

    def to_numpy(self) -> npt.NDArray[Any]:
        """The tensor as a numpy array of its datatype and shape; TensorError if they disagree."""
        expected = math.prod(self.shape)  # exact: numpy's int64 product wraps around
        # with a nonzero product, no dimension is larger than the product itself
        too_large = expected.bit_length() > 63 or (
            expected == 0 and any(dim.bit_length() > 63 for dim in self.shape)
        )
        if too_large:
            # said without the shape: Python will not write an int of over 4,300 digits
            raise TensorError(
                f"tensor '{self.name}': its shape has a dimension or an element count over "
                "2**63 - 1, more than any array can hold"
            )
        if any(dim < 0 for dim in self.shape):
            raise TensorError(f"tensor '{self.name}': shape {self.shape} has a negative dimension")
        if self.raw is not None:
            try:
                array = unpack(self.raw, self.datatype.numpy_dtype, expected)
            except RawError as exc:
                raise TensorError(f"tensor '{self.name}': shape {self.shape}: {exc}") from exc
        else:
            array = self._convert()
            if array.size != expected:
                raise TensorError(
                    f"tensor '{self.name}': shape {self.shape} needs {expected} elements, "
                    f"data has {array.size}"
                )
        try:
            return array.reshape(self.shape)
        except ValueError as exc:  # no elements, but a dimension numpy cannot hold
            raise TensorError(f"tensor '{self.name}': shape {self.shape} is too large") from exc

    def _convert(self) -> npt.NDArray[Any]:
        """The data as the datatype, refusing any conversion that would change a value."""
        assert self.data is not None
        try:
            raw = np.asarray(self.data)
        except ValueError as exc:
            raise self._not_of_datatype("ragged nesting") from exc
        target = self.datatype.numpy_dtype
        if target.kind == "f" and raw.dtype.kind in "UO" and raw.size:
            spelled = _spelled_floats(self.data)
            raw = raw if spelled is None else spelled
        if target.kind in "iu" and raw.dtype.kind == "f" and raw.size:
            # numpy makes floats of integers from both sides of int64's limit ([0, 2**63]),
            # and floats cannot hold them all: take such integers as they are.
            whole = np.array(self.data, dtype=object)
            if all(type(item) is int for item in whole.flat):
                return self._integers(whole, target)
        if raw.size and raw.dtype.kind not in _ACCEPTS[self.datatype]:
            raise self._not_of_datatype(f"found {_KIND_NAMES.get(raw.dtype.kind, raw.dtype)}")
        if self.datatype is Datatype.BYTES:
            return self._texts()
        if target.kind in "iu" and raw.size:
            return self._integers(raw, target)
        if target.kind == "f":
            with np.errstate(over="ignore"):
                converted = raw.astype(target)
            if (np.isinf(converted) & ~np.isinf(raw)).any():
                fmax = np.finfo(target).max
                raise self._not_of_datatype(f"values outside [-{fmax}, {fmax}]")
            return converted
        return raw.astype(target)

    def _integers(self, raw: npt.NDArray[Any], target: np.dtype[Any]) -> npt.NDArray[Any]:
        info = np.iinfo(target)
        if raw.min() < info.min or raw.max() > info.max:
            raise self._not_of_datatype(f"values outside [{info.min}, {info.max}]")
        return raw.astype(target)

    def _texts(self) -> npt.NDArray[Any]:
        """BYTES data as the strings sent: numpy's own text arrays would drop trailing NULs
        and turn numbers among the strings into text."""
        texts = np.array(self.data, dtype=object)
        for item in texts.flat:
            if not isinstance(item, str):
                raise self._not_of_datatype("found strings mixed with other values")
            if not is_utf8(item):
                raise self._not_of_datatype("found text that is not valid UTF-8")
        return texts

    def _not_of_datatype(self, why: str) -> TensorError:
        return TensorError(
            f"tensor '{self.name}': data is not a list of {self.datatype} values ({why})"
        )

    @classmethod
    def from_numpy(cls, name: str, array: npt.ArrayLike, *, binary: bool = False) -> "Tensor":
        """A tensor of `array`: `binary` puts the elements in `raw` instead of `data`."""
        arr = np.asarray(array)
        datatype = Datatype.from_numpy(arr.dtype)
        if binary:
            if datatype is Datatype.BYTES:
                for item in arr.ravel():
                    _text(name, item)  # BYTES elements are text: refused here, not on the way
            try:
                raw = pack(arr, datatype.numpy_dtype)
            except RawError as exc:
                raise TensorError(f"tensor '{name}': {exc}") from exc
            return cls(name=name, datatype=datatype, shape=list(arr.shape), raw=raw)
        flat = arr.ravel()
        if datatype is Datatype.BYTES:
            data: list[Any] = [_text(name, item) for item in flat]
        else:
            data = flat.tolist()  # non-finite floats are spelled when written as JSON
        return cls(name=name, datatype=datatype, shape=list(arr.shape), data=data)


def _text(name: str, item: object) -> str:
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TensorError(
                f"tensor '{name}': a BYTES element is bytes that are not valid UTF-8 text"
            ) from exc
    text = str(item)
    if not is_utf8(text):
        raise TensorError(f"tensor '{name}': a BYTES element is text that is not valid UTF-8")
    return text


def is_utf8(text: str) -> bool:
    """False for a str that cannot be written as UTF-8 (one with lone surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
