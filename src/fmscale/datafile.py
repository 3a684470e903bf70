"""Embeddings files: the formats a user's N x D rows may come in, read whole or by header only.

``peek_shape`` reads only what a format's header says (npy header, safetensors header, parquet
metadata and one row), so the workflow learns N and D while it builds its DAG; it imports
torch only for ``.pt``, a format without a header. ``read_array`` reads the rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

FILE_SUFFIXES = (".npy", ".pt", ".safetensors", ".parquet")
TENSOR_KEY = "embeddings"
"""The tensor a .pt / .safetensors dict of several tensors must name, unless ``column`` says."""


def check_suffix(path: Path) -> str:
    """The file's format, or DataError naming the formats there are."""
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type '{suffix}'; use one of {', '.join(FILE_SUFFIXES)}"
        )
    return suffix


def _pick_key(path: Path, keys: list[str], column: str | None) -> str:
    """The one tensor of a dict file to read: ``column``, else 'embeddings', else the only one."""
    if column is not None:
        if column not in keys:
            raise DataError(
                f"{path}: no tensor named '{column}' (data.column); it holds {sorted(keys)}"
            )
        return column
    if TENSOR_KEY in keys:
        return TENSOR_KEY
    if len(keys) == 1:
        return keys[0]
    raise DataError(
        f"{path}: holds tensors {sorted(keys)}; set data.column to the N x D one "
        f"(or name it '{TENSOR_KEY}')"
    )


def _parquet_layout(path: Path, column: str | None) -> tuple[str | None, list[str]]:
    """(the list column holding the vectors or None for one numeric column per dimension,
    every column name); DataError naming the column to set when the layout is ambiguous."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    names = list(schema.names)
    lists = [
        f.name
        for f in schema
        if pa.types.is_list(f.type)
        or pa.types.is_large_list(f.type)
        or pa.types.is_fixed_size_list(f.type)
    ]
    if column is not None:
        if column not in names:
            raise DataError(f"{path}: no column '{column}' (data.column); it has {names[:20]}")
        if column not in lists:
            raise DataError(
                f"{path}: column '{column}' (data.column) holds {schema.field(column).type}, "
                "not a list of numbers per row"
            )
        return column, names
    if len(names) == 1 and lists:
        return names[0], names
    if lists:
        raise DataError(
            f"{path}: columns {names[:20]}; set data.column to the one holding the "
            f"embeddings (list columns: {lists})"
        )
    numeric = [
        f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
    ]
    bad = [n for n in names if n not in numeric]
    if bad:
        raise DataError(
            f"{path}: non-numeric column(s) {bad[:5]}; expected one numeric column per "
            "dimension, or a column of vectors named by data.column"
        )
    return None, names


def peek_shape(path: str | Path, column: str | None = None) -> tuple[int, int]:
    """(N rows, D dims) of an embeddings file from its header; DataError naming the problem."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    suffix = check_suffix(path)
    try:
        shape = _peek(path, suffix, column)
    except DataError:
        raise
    except Exception as exc:  # corrupt or unreadable files raise many library-specific errors
        raise DataError(f"{path}: cannot read as {suffix} ({type(exc).__name__}: {exc})") from None
    if len(shape) != 2:
        raise DataError(f"{path}: expected a 2-D array of N rows x D dims, got shape {shape}")
    return int(shape[0]), int(shape[1])


def _peek(path: Path, suffix: str, column: str | None) -> tuple[int, ...]:
    if suffix == ".npy":
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)  # header only
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            return tuple(f.get_slice(_pick_key(path, list(f.keys()), column)).get_shape())
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        vectors, names = _parquet_layout(path, column)
        meta = pq.ParquetFile(path).metadata
        if vectors is None:
            return (meta.num_rows, len(names))
        first = next(pq.ParquetFile(path).iter_batches(batch_size=1, columns=[vectors]), None)
        dim = 0 if first is None or first.num_rows == 0 else len(first.column(0)[0])
        return (meta.num_rows, dim)
    return tuple(read_array(path, column).shape)  # .pt: no header, read it whole


def read_array(path: Path, column: str | None = None) -> Any:
    """The N x D rows of an embeddings file as a numpy array or torch tensor (unchecked)."""
    suffix = check_suffix(path)
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".pt":
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
        return _from_dict(path, obj, column)
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        return _from_dict(path, load_file(str(path)), column)
    return _read_parquet(path, column)


def _from_dict(path: Path, obj: Any, column: str | None) -> Any:
    if isinstance(obj, dict):
        arrays = {k: v for k, v in obj.items() if hasattr(v, "shape")}
        return arrays[_pick_key(path, list(arrays), column)]
    if column is not None:
        raise DataError(f"{path}: holds one tensor, not a dict; drop data.column")
    if not hasattr(obj, "shape"):
        raise DataError(f"{path}: holds a {type(obj).__name__}, expected an N x D tensor")
    return obj


def _read_parquet(path: Path, column: str | None) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors, names = _parquet_layout(path, column)
    if vectors is None:
        return pq.read_table(path).to_pandas().to_numpy()
    values = pq.read_table(path, columns=[vectors]).column(0).combine_chunks()
    if values.null_count:
        raise DataError(f"{path}: column '{vectors}' has {values.null_count} empty row(s)")
    lengths = (
        np.full(len(values), values.type.list_size)
        if pa.types.is_fixed_size_list(values.type)
        else np.diff(values.offsets.to_numpy())
    )
    if len(values) and lengths.min() != lengths.max():
        first = int(np.argmax(lengths != lengths[0]))
        raise DataError(
            f"{path}: column '{vectors}' holds vectors of different lengths "
            f"({lengths[0]} in row 0, {lengths[first]} in row {first})"
        )
    flat = values.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(values), int(lengths[0]) if len(values) else 0)
