"""Turn a chunk of JSON payloads into named Arrow columns.

Rules (the same for every chunk, so chunks can be joined later):

* a dict payload gives one column per leaf, nested dicts joined with dots
  (``{"a": {"b": 1}}`` -> column ``a.b``); an empty nested dict gives nothing;
* any other payload (number, string, bool, null, list) goes to column ``value``;
* lists, and columns whose values mix kinds Arrow cannot hold in one type
  (a number here, a string there), become *JSON columns*: UTF-8 JSON text per
  cell, decoded back to Python objects when a frame is built;
* a missing field is a null.

Two paths give the same result. The fast one lets Arrow infer a struct from a
chunk of dicts in C++; when it cannot (mixed kinds, scalars among dicts, ints
too large) the chunk goes through a plain Python walk.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

__all__ = ["RESERVED_COLUMNS", "FlatChunk", "flatten_payloads", "json_text_array"]

#: column names the recording layout uses itself; payload fields with these names
#: are stored as ``data.<name>``.
RESERVED_COLUMNS = frozenset({"time", "topic", "offset", "epoch", "data"})

#: name -> array, and the names that hold JSON text
FlatChunk = tuple[dict[str, pa.Array], set[str]]

_NESTED_TYPES = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list, pa.types.is_map)


def column_name(path: str) -> str:
    """The column a payload leaf at ``path`` is stored under."""
    return f"data.{path}" if path in RESERVED_COLUMNS else path


def json_text_array(values: list[Any]) -> pa.Array:
    """Each value as JSON text (nulls stay null), as an Arrow string array."""
    dumps = orjson.dumps
    return pa.array([None if value is None else dumps(value).decode() for value in values], type=pa.string())


def flatten_payloads(payloads: list[Any]) -> FlatChunk:
    """Flatten ``payloads`` into columns of ``len(payloads)`` rows each.

    Returns:
        ``(columns, json_columns)``: columns in first-seen order, and the names
        of those that hold JSON text.
    """
    if payloads and all(type(payload) is dict for payload in payloads):
        try:
            struct = pa.array(payloads)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            pass
        else:
            if pa.types.is_struct(struct.type):
                columns: dict[str, pa.Array] = {}
                json_columns: set[str] = set()
                _flatten_struct(struct, "", columns, json_columns)
                return columns, json_columns
    return _flatten_python(payloads)


def _flatten_struct(struct: pa.StructArray, prefix: str, columns: dict[str, pa.Array], json_columns: set[str]) -> None:
    children = struct.flatten()
    for index in range(struct.type.num_fields):
        field = struct.type.field(index)
        path = f"{prefix}{field.name}"
        child = children[index]
        if pa.types.is_struct(field.type):
            # a nested dict; the parent's nulls (missing dict) are already in the children
            _flatten_struct(child, f"{path}.", columns, json_columns)
        elif any(check(field.type) for check in _NESTED_TYPES):
            name = column_name(path)
            columns[name] = json_text_array(child.to_pylist())
            json_columns.add(name)
        else:
            columns[column_name(path)] = child


def _flatten_python(payloads: list[Any]) -> FlatChunk:
    rows = len(payloads)
    values: dict[str, list[Any]] = {}
    json_columns: set[str] = set()

    def store(path: str, row: int, value: Any) -> None:
        column = values.get(path)
        if column is None:
            column = values[path] = [None] * rows
        column[row] = value
        if type(value) is list:
            json_columns.add(path)

    def walk(mapping: dict[str, Any], prefix: str, row: int) -> None:
        for key, value in mapping.items():
            if type(value) is dict:
                walk(value, f"{prefix}{key}.", row)
            else:
                store(f"{prefix}{key}", row, value)

    for row, payload in enumerate(payloads):
        if type(payload) is dict:
            walk(payload, "", row)
        else:
            store("value", row, payload)

    columns: dict[str, pa.Array] = {}
    stored_as_json: set[str] = set()
    for path, column in values.items():
        name = column_name(path)
        if path not in json_columns:
            try:
                array = pa.array(column)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                pass
            else:
                if not pa.types.is_nested(array.type):
                    columns[name] = array
                    continue
        columns[name] = json_text_array(column)
        stored_as_json.add(name)
    return columns, stored_as_json
