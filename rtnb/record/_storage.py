"""Recordings on disk: Parquet (pyarrow) and CSV, and spilling to Parquet in row groups.

Both formats keep the recording layout of :mod:`._layout` exactly: timestamps to
the nanosecond, topic, offset and epoch, payload columns with their types, JSON
columns, scalar topics and gaps.

* Parquet: the table as is; the layout's JSON document sits in the schema
  metadata under ``rtnb``.
* CSV: a first line ``#rtnb {JSON}`` holding the same document plus the Arrow
  schema (base64), then ordinary CSV that any tool reads (skip one line).

Files are written to a temporary name and renamed, so a crash never leaves a
half-written recording under the final name.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ..core.errors import BadArgument
from ._buffer import TOPIC_TYPE, Chunk
from ._layout import METADATA_KEY, RecordingInfo, conform_table, unify_tables

__all__ = ["FileFormat", "SpillWriter", "file_format", "read_table", "write_table"]

FileFormat = Literal["parquet", "csv"]

_SUFFIXES: dict[str, FileFormat] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_CSV_MARK = b"#rtnb "


def file_format(path: str | os.PathLike[str], format: FileFormat | None = None) -> FileFormat:
    """The format to use for ``path``: ``format`` if given, else from the suffix.

    Raises:
        BadArgument (a ValueError): unknown format or suffix.
    """
    if format is not None:
        if format not in ("parquet", "csv"):
            raise BadArgument(f"Unknown recording format {format!r}; use 'parquet' or 'csv'.")
        return format
    suffix = Path(path).suffix.lower()
    found = _SUFFIXES.get(suffix)
    if found is None:
        raise BadArgument(
            f"Cannot tell the format of {str(path)!r} from its suffix; use .parquet or .csv, or pass format=."
        )
    return found


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_table(
    table: pa.Table,
    path: str | os.PathLike[str],
    format: FileFormat | None = None,
    *,
    row_group_rows: int = 65_536,
) -> Path:
    """Write a recording table to ``path`` atomically; returns the path."""
    target = Path(path)
    kind = file_format(target, format)
    temporary = _temporary(target)
    try:
        if kind == "parquet":
            pq.write_table(table, temporary, row_group_size=row_group_rows)
        else:
            _write_csv(table, temporary)
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()
    return target


def read_table(path: str | os.PathLike[str], format: FileFormat | None = None) -> pa.Table:
    """Read a recording table written by :func:`write_table` (or any Parquet/CSV with the base columns).

    Raises:
        BadArgument (a ValueError): the file is missing, unreadable, or not a recording.
    """
    source = Path(path)
    kind = file_format(source, format)
    if not source.is_file():
        raise BadArgument(f"No recording at {str(source)!r}.")
    try:
        if kind == "parquet":
            return pq.read_table(source)
        return _read_csv(source)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
        raise BadArgument(f"Cannot read the recording {str(source)!r}: {error}.") from None


# -- CSV -----------------------------------------------------------------------------


def _write_csv(table: pa.Table, path: Path) -> None:
    document = orjson.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    plain = table.replace_schema_metadata(None)
    document["schema"] = base64.b64encode(plain.schema.serialize().to_pybytes()).decode()
    if "topic" in plain.column_names and pa.types.is_dictionary(plain.schema.field("topic").type):
        plain = plain.set_column(plain.column_names.index("topic"), "topic", plain["topic"].cast(pa.string()))
    with open(path, "wb") as stream:
        stream.write(_CSV_MARK + orjson.dumps(document) + b"\n")
        pa_csv.write_csv(plain, stream)


def _read_csv(path: Path) -> pa.Table:
    with open(path, "rb") as stream:
        first = stream.readline()
    if not first.startswith(_CSV_MARK):
        raise BadArgument(f"{str(path)!r} is not an rtnb CSV recording (no '#rtnb' first line).")
    try:
        document = orjson.loads(first[len(_CSV_MARK) :])
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(document.pop("schema"))))
    except (orjson.JSONDecodeError, KeyError, ValueError, pa.ArrowInvalid) as error:
        raise BadArgument(f"The '#rtnb' line of {str(path)!r} cannot be read: {error}.") from None
    column_types = {
        column.name: (pa.string() if pa.types.is_dictionary(column.type) else column.type) for column in schema
    }
    table = pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(skip_rows=1, block_size=1 << 24),
        convert_options=pa_csv.ConvertOptions(
            column_types=column_types, strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )
    if "topic" in table.column_names:
        table = table.set_column(table.column_names.index("topic"), "topic", table["topic"].dictionary_encode())
    return table.replace_schema_metadata({METADATA_KEY: orjson.dumps(document)})


# -- spill ---------------------------------------------------------------------------


class SpillWriter:
    """Writes sealed chunks to Parquet as they come, and the final file at the end.

    While recording, chunks go to part files in ``<path>.parts/`` as row groups
    (a new part starts whenever the columns change, since a Parquet file has one
    schema). :meth:`finish` unifies the parts' schemas and streams every row
    group into ``path``, one row group in memory at a time, then removes the parts.

    Args:
        path: the final Parquet file.

    Raises:
        BadArgument (a ValueError): ``path`` is not a Parquet path, or its parts directory is in use.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if file_format(self.path) != "parquet":
            raise BadArgument(f"Spill files are Parquet; {str(self.path)!r} does not end in .parquet.")
        self.parts_directory = self.path.with_name(self.path.name + ".parts")
        if self.parts_directory.exists():
            raise BadArgument(
                f"{str(self.parts_directory)!r} exists: another recording spills there, or one crashed (remove it)."
            )
        self.parts: list[tuple[Path, frozenset[str]]] = []
        self.rows = 0
        self.bytes_written = 0
        self._writer: pq.ParquetWriter | None = None
        self._key: tuple[pa.Schema, frozenset[str]] | None = None

    def write(self, chunk: Chunk) -> None:
        """Append a chunk as one row group."""
        key = (chunk.table.schema, frozenset(chunk.json_columns))
        if self._writer is None or self._key != key:
            self._close_part()
            self.parts_directory.mkdir(parents=True, exist_ok=True)
            part = self.parts_directory / f"part-{len(self.parts):05d}.parquet"
            self._writer = pq.ParquetWriter(part, chunk.table.schema)
            self._key = key
            self.parts.append((part, key[1]))
        self._writer.write_table(chunk.table, row_group_size=max(1, chunk.rows))
        self.rows += chunk.rows
        self.bytes_written += chunk.nbytes

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._key = None

    def chunks(self) -> Iterator[Chunk]:
        """Every spilled row group so far, as chunks (closes the open part first)."""
        self._close_part()
        for part, json_columns in self.parts:
            parquet = pq.ParquetFile(part)
            for group in range(parquet.num_row_groups):
                yield Chunk(_with_topic_dictionary(parquet.read_row_group(group)), set(json_columns))

    def finish(self, tail: list[Chunk], info: RecordingInfo) -> Path:
        """Write the final file from the parts and the in-memory ``tail``; remove the parts."""
        self._close_part()
        schemas = [pq.read_schema(part) for part, _ in self.parts] + [chunk.table.schema for chunk in tail]
        json_columns = set().union(*(columns for _, columns in self.parts), *(chunk.json_columns for chunk in tail))
        schema, unified_json = unify_tables([schema.empty_table() for schema in schemas], json_columns)
        info.json_columns = unified_json
        schema = schema.with_metadata(info.to_metadata())
        temporary = _temporary(self.path)
        try:
            with pq.ParquetWriter(temporary, schema) as writer:
                for chunk in itertools.chain(self.chunks(), tail):
                    writer.write_table(
                        conform_table(chunk.table, schema, unified_json, chunk.json_columns).replace_schema_metadata(
                            schema.metadata
                        )
                    )
            os.replace(temporary, self.path)
        finally:
            if temporary.exists():
                temporary.unlink()
        self.discard()
        return self.path

    def discard(self) -> None:
        """Remove the part files."""
        self._close_part()
        if self.parts_directory.exists():
            shutil.rmtree(self.parts_directory)
        self.parts = []


def _with_topic_dictionary(table: pa.Table) -> pa.Table:
    if "topic" in table.column_names and table.schema.field("topic").type != TOPIC_TYPE:
        column = table["topic"]
        column = column.cast(pa.string()).dictionary_encode() if not pa.types.is_dictionary(column.type) else column
        table = table.set_column(table.column_names.index("topic"), "topic", column.cast(TOPIC_TYPE))
    return table
