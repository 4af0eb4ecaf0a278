"""The recording layout: one Arrow table shape shared by memory, files and frames.

A recording is an Arrow table with columns ``time`` (timestamp[ns, UTC], the
hub's timestamp), ``topic`` (dictionary-encoded string), ``offset`` and
``epoch`` (int64), then one column per payload field (see :mod:`._flatten`),
then optionally ``data`` (the raw payload as JSON text). Schema metadata under
``b"rtnb"`` holds a JSON object::

    {"format": "rtnb-recording", "version": 1,
     "json_columns": [...],    # columns holding JSON text, decoded to Python objects in frames
     "scalar_topics": [...],   # topics whose payloads were not dicts (replay sends them back bare)
     "gaps": [{"received", "topic", "from", "to", "reason", "epoch"}, ...]}

This module joins chunks into that table (unifying column types), and converts
between it and a pandas DataFrame in both directions, so that
frame -> Parquet/CSV -> frame is exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ..core.errors import BadArgument
from ._buffer import TIME_TYPE, TOPIC_TYPE, Chunk, RecordedGap
from ._flatten import json_text_array

__all__ = [
    "BASE_COLUMNS",
    "FRAME_ATTRIBUTE",
    "RecordingInfo",
    "frame_from_table",
    "join_chunks",
    "table_from_frame",
    "unify_tables",
]

#: columns every recording has, in this order
BASE_COLUMNS = ("time", "topic", "offset", "epoch")
#: key of ``DataFrame.attrs`` that carries gaps and scalar topics along with a frame
FRAME_ATTRIBUTE = "rtnb"
METADATA_KEY = b"rtnb"
FORMAT_NAME = "rtnb-recording"
FORMAT_VERSION = 1

_JSON = "json"


@dataclass
class RecordingInfo:
    """What a recording knows besides its rows."""

    json_columns: set[str] = field(default_factory=set)
    scalar_topics: set[str] = field(default_factory=set)
    gaps: list[RecordedGap] = field(default_factory=list)

    def to_metadata(self) -> dict[bytes, bytes]:
        document = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "json_columns": sorted(self.json_columns),
            "scalar_topics": sorted(self.scalar_topics),
            "gaps": [gap.to_record() for gap in self.gaps],
        }
        return {METADATA_KEY: orjson.dumps(document)}

    @classmethod
    def from_metadata(cls, metadata: dict[bytes, bytes] | None) -> RecordingInfo:
        """Read the info back from schema metadata (empty info for foreign files).

        Raises:
            BadArgument (a ValueError): the metadata is there but not a recording's, or from a newer version.
        """
        raw = (metadata or {}).get(METADATA_KEY)
        if raw is None:
            return cls()
        try:
            document = orjson.loads(raw)
            if document.get("format") != FORMAT_NAME:
                raise BadArgument("The file's rtnb metadata is not a recording's.")
            if int(document.get("version", 0)) > FORMAT_VERSION:
                raise BadArgument(
                    f"The recording is format version {document['version']}; this rtnb reads up to {FORMAT_VERSION}."
                )
            return cls(
                set(document.get("json_columns", ())),
                set(document.get("scalar_topics", ())),
                [RecordedGap.from_record(record) for record in document.get("gaps", ())],
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise BadArgument(f"The file's rtnb metadata cannot be read: {error}.") from None

    def to_attrs(self) -> dict[str, Any]:
        return {
            "scalar_topics": sorted(self.scalar_topics),
            "gaps": [gap.to_record() for gap in self.gaps],
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> RecordingInfo:
        found = attrs.get(FRAME_ATTRIBUTE) or {}
        try:
            return cls(
                set(),
                set(found.get("scalar_topics", ())),
                [RecordedGap.from_record(record) for record in found.get("gaps", ())],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise BadArgument(f"frame.attrs[{FRAME_ATTRIBUTE!r}] is not a recording's: {error}.") from None


# -- joining chunks ------------------------------------------------------------------


def _unified_type(types: set[pa.DataType]) -> pa.DataType | str:
    """One type for a column whose chunks have ``types``; ``"json"`` when none fits."""
    types = {column_type for column_type in types if not pa.types.is_null(column_type)}
    if not types:
        return pa.null()
    if len(types) == 1:
        return next(iter(types))
    if all(pa.types.is_integer(column_type) or pa.types.is_floating(column_type) for column_type in types):
        return pa.float64()
    return _JSON


def unify_tables(tables: Sequence[pa.Table], json_columns: Iterable[str] = ()) -> tuple[pa.Schema, set[str]]:
    """The schema all ``tables`` can be cast to, and the columns that must be JSON text.

    Columns keep their first-seen order; a column absent from a table is null there.
    """
    json_set = set(json_columns)
    names: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for column_field in table.schema:
            names.setdefault(column_field.name, set()).add(column_field.type)
    fields = []
    unified_json: set[str] = set()
    for name, types in names.items():
        if name in BASE_COLUMNS:
            continue
        target = pa.string() if name in json_set else _unified_type(types)
        if target == _JSON or name in json_set:
            unified_json.add(name)
            target = pa.string()
        fields.append(pa.field(name, target))
    base = [
        pa.field("time", TIME_TYPE),
        pa.field("topic", TOPIC_TYPE),
        pa.field("offset", pa.int64()),
        pa.field("epoch", pa.int64()),
    ]
    return pa.schema(base + fields), unified_json


def conform_table(table: pa.Table, schema: pa.Schema, json_columns: set[str], table_json: set[str]) -> pa.Table:
    """Cast ``table`` to ``schema``: missing columns become nulls, mixed ones JSON text."""
    rows = table.num_rows
    arrays = []
    for target in schema:
        if target.name not in table.column_names:
            arrays.append(pa.nulls(rows, target.type))
            continue
        column = table[target.name]
        if target.name in json_columns and target.name not in table_json and not pa.types.is_null(column.type):
            arrays.append(json_text_array(column.to_pylist()))
        elif column.type != target.type:
            arrays.append(column.cast(target.type))
        else:
            arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


def join_chunks(chunks: Sequence[Chunk], info: RecordingInfo) -> pa.Table:
    """All ``chunks`` as one table in the recording layout (zero-copy where types agree)."""
    tables = [chunk.table for chunk in chunks]
    json_columns = set().union(*(chunk.json_columns for chunk in chunks)) if chunks else set()
    schema, unified_json = unify_tables(tables, json_columns)
    info.json_columns = unified_json
    schema = schema.with_metadata(info.to_metadata())
    if not tables:
        return schema.empty_table()
    conformed = [conform_table(chunk.table, schema, unified_json, chunk.json_columns) for chunk in chunks]
    return pa.concat_tables(conformed).replace_schema_metadata(schema.metadata)


# -- table -> frame ------------------------------------------------------------------


def _topic_categorical(column: pa.ChunkedArray) -> pd.Categorical:
    """Topics as a categorical with sorted categories, whatever dictionaries the chunks had."""
    if not pa.types.is_dictionary(column.type):
        column = column.cast(pa.string()).dictionary_encode()
    column = column.unify_dictionaries() if column.num_chunks else column
    if column.num_chunks == 0 or len(column) == 0:
        return pd.Categorical([], categories=pd.Index([], dtype=object).astype(str))
    dictionary = column.chunk(0).dictionary.to_pylist()
    indices = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in column.chunks])
    if column.null_count:
        raise BadArgument("The recording has rows without a topic.")
    used = np.flatnonzero(np.bincount(indices, minlength=len(dictionary)))
    names = sorted(dictionary[code] for code in used)
    code_of = {name: code for code, name in enumerate(dictionary)}
    remap = np.full(len(dictionary), -1, dtype=np.int32)
    for position, name in enumerate(names):
        remap[code_of[name]] = position
    return pd.Categorical.from_codes(remap[indices], categories=pd.Index(names).astype(str))


def _writable(array: np.ndarray) -> np.ndarray:
    """``array``, copied only when it is a read-only view of Arrow memory (a frame must be editable)."""
    return array if array.flags.writeable else array.copy()


def _integers(column: pa.ChunkedArray) -> np.ndarray:
    return _writable(column.cast(pa.int64()).to_numpy())


def _payload_series(column: pa.ChunkedArray, name: str, is_json: bool, index: pd.Index) -> pd.Series:
    column_type = column.type
    if is_json:
        # decoded chunk by chunk into one object array: the transient lists stay chunk-sized
        loads = orjson.loads
        values = np.empty(len(column), dtype=object)
        position = 0
        for chunk in column.chunks:
            for text in chunk.to_pylist():
                if text is not None:
                    values[position] = loads(text)
                position += 1
        return pd.Series(values, index=index, name=name, copy=False)
    if pa.types.is_null(column_type):
        return pd.Series([None] * len(column), index=index, name=name, dtype=object)
    if pa.types.is_integer(column_type):
        if column.null_count:
            values = column.to_pandas(types_mapper={column_type: pd.Int64Dtype()}.get).array
            return pd.Series(values, index=index, name=name, copy=False)
        return pd.Series(_writable(column.to_numpy()), index=index, name=name, copy=False)
    if pa.types.is_floating(column_type):
        return pd.Series(_writable(column.to_numpy()), index=index, name=name, copy=False)
    if pa.types.is_boolean(column_type):
        if column.null_count:
            values = column.to_pandas(types_mapper={column_type: pd.BooleanDtype()}.get).array
            return pd.Series(values, index=index, name=name, copy=False)
        return pd.Series(_writable(column.to_numpy()), index=index, name=name, copy=False)
    if pa.types.is_string(column_type) or pa.types.is_large_string(column_type):
        strings = column.cast(pa.string()).to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
        return pd.Series(strings.array, index=index, name=name, copy=False)
    if pa.types.is_dictionary(column_type):
        return pd.Series(column.to_pandas().array, index=index, name=name, copy=False)
    return pd.Series(column.to_pandas().array, index=index, name=name, copy=False)


def frame_from_table(
    table: pa.Table, info: RecordingInfo | None = None, *, raw: bool = True, consume: bool = False
) -> pd.DataFrame:
    """A DataFrame from a table in the recording layout.

    Args:
        table: the rows.
        info: json columns, scalar topics and gaps (read from the schema metadata when omitted).
        raw: keep the ``data`` column when the table has one.
        consume: drop each column from ``table`` once converted, so that, when
            the caller holds no other reference to the table, its memory is
            released column by column and the peak stays near one frame, not two.

    Raises:
        BadArgument (a ValueError): a base column is missing.
    """
    if info is None:
        info = RecordingInfo.from_metadata(table.schema.metadata)
    missing = [name for name in BASE_COLUMNS if name not in table.column_names]
    if missing:
        raise BadArgument(f"Not a recording: column(s) {', '.join(missing)} missing.")

    def take(name: str) -> pa.ChunkedArray:
        nonlocal table
        column = table[name]
        if consume:
            table = table.drop_columns([name])
        return column

    time_column = take("time")
    if time_column.type != TIME_TYPE:
        time_column = time_column.cast(TIME_TYPE)
    nanoseconds = time_column.cast(pa.int64()).to_numpy() if len(time_column) else np.empty(0, dtype=np.int64)
    del time_column
    index = pd.DatetimeIndex(pd.to_datetime(nanoseconds, unit="ns", utc=True), name="time")
    del nanoseconds
    data: dict[str, Any] = {
        "topic": pd.Series(_topic_categorical(take("topic")), index=index, name="topic", copy=False),
        "offset": pd.Series(_integers(take("offset")), index=index, name="offset", copy=False),
        "epoch": pd.Series(_integers(take("epoch")), index=index, name="epoch", copy=False),
    }
    for name in list(table.column_names):
        if name in BASE_COLUMNS or (name == "data" and not raw):
            continue
        data[name] = _payload_series(take(name), name, name in info.json_columns, index)
    del table
    frame = pd.DataFrame(data, index=index, copy=False)  # no consolidation copy: peak memory
    frame.attrs[FRAME_ATTRIBUTE] = info.to_attrs()
    return frame


# -- frame -> table ------------------------------------------------------------------


def _array_from_series(series: pd.Series, name: str) -> tuple[pa.Array, bool]:
    """An Arrow array for one payload column and whether it holds JSON text."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(object).where(series.notna(), None)
        dtype = series.dtype
    if dtype == np.dtype(object):
        values = [None if _is_missing(value) else value for value in series.tolist()]
        if all(value is None for value in values):
            return pa.nulls(len(values)), False
        if all(value is None or type(value) is str for value in values):
            return pa.array(values, type=pa.string()), False
        return json_text_array(values), True
    if isinstance(dtype, pd.StringDtype):
        return pa.array(series.astype(object).where(series.notna(), None).tolist(), type=pa.string()), False
    try:
        return pa.Array.from_pandas(series), False
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as error:
        raise BadArgument(f"Column {name!r} ({dtype}) cannot be stored: {error}.") from None


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and value != value


def table_from_frame(frame: pd.DataFrame) -> pa.Table:
    """A frame in the recording layout (as :func:`frame_from_table` makes) back to a table.

    Raises:
        BadArgument (a ValueError): no DatetimeIndex, or a base column is missing.
    """
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise BadArgument("A recording frame needs a DatetimeIndex of hub timestamps.")
    missing = [name for name in BASE_COLUMNS[1:] if name not in frame.columns]
    if missing:
        raise BadArgument(f"Not a recording frame: column(s) {', '.join(missing)} missing.")
    index = frame.index if frame.index.tz is not None else frame.index.tz_localize("UTC")
    nanoseconds = index.tz_convert("UTC").as_unit("ns").asi8
    info = RecordingInfo.from_attrs(frame.attrs)
    topics = frame["topic"]
    topic_strings = topics.astype(object).tolist()
    if any(not isinstance(topic, str) for topic in topic_strings):
        raise BadArgument("Every row of a recording frame needs a topic.")
    arrays: dict[str, pa.Array] = {
        "time": pa.array(nanoseconds, type=TIME_TYPE),
        "topic": pa.array(topic_strings, type=pa.string()).dictionary_encode(),
        "offset": pa.array(frame["offset"].to_numpy(dtype=np.int64), type=pa.int64()),
        "epoch": pa.array(frame["epoch"].to_numpy(dtype=np.int64), type=pa.int64()),
    }
    for name in frame.columns:
        if name in BASE_COLUMNS:
            continue
        array, is_json = _array_from_series(frame[name], str(name))
        arrays[str(name)] = array
        if is_json:
            info.json_columns.add(str(name))
    table = pa.table(arrays)
    return table.replace_schema_metadata(info.to_metadata())
