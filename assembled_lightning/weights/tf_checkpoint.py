"""Read TensorFlow 'V2' name-based checkpoints (tensor bundles) with numpy only.

The original release ships TF1 ``tf.train.Saver`` / Estimator checkpoints, and TensorFlow must not
be a dependency just to convert them. A bundle (ORIGINAL.md §2.1) is:

- ``<prefix>.index``: a LevelDB-style sorted table. Its key ``""`` holds a ``BundleHeaderProto``
  (number of data shards, endianness); every other key is a variable name whose value is a
  ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c of the bytes).
- ``<prefix>.data-NNNNN-of-MMMMM``: the raw little-endian tensor bytes.
- ``checkpoint`` (text, in the folder): ``model_checkpoint_path: "<prefix>"`` names the latest one.

Everything is validated (table footer and magic, block bounds and block checksums, tensor bounds,
sizes and, by default, each tensor's crc32c) so that a damaged download fails with a message
saying what to do instead of yielding garbage weights. The tensor checksums cost a pass over the
data (about 0.1 s per MB); ``verify_checksums=False`` skips them.
"""

from __future__ import annotations

import ast
import os
import re
import struct
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path

import numpy as np

from .crc32c import crc32c, masked_crc32c

__all__ = [
    "CorruptCheckpointError",
    "TFCheckpointReader",
    "TensorEntry",
    "crc32c",
    "resolve_checkpoint_prefix",
]

_WHAT_A_CHECKPOINT_IS = (
    "a TF1 checkpoint is <prefix>.index plus <prefix>.data-00000-of-0000N (usually with a "
    "`checkpoint` file in the same folder naming the prefix)"
)
_FIX = "re-download or re-copy the checkpoint (its .index and every .data-* file)"

# --------------------------------------------------------------------------------------------------
# Wire formats: varints, protobuf messages, LevelDB table blocks.
# --------------------------------------------------------------------------------------------------


class CorruptCheckpointError(ValueError):
    """The checkpoint files are truncated or damaged; the message names the file and the fix."""


class _FormatError(Exception):
    """Malformed bytes; re-raised as CorruptCheckpointError once the file name is known."""


def _corrupt(path: Path, problem: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"{path} is a corrupt or truncated TF checkpoint file ({problem}); {_FIX}"
    )


def _varint(buffer: bytes, position: int, end: int) -> tuple[int, int]:
    """A base-128 varint in ``buffer[position:end]``; returns (value, position after it)."""
    value = shift = 0
    while shift < 64:
        if position >= end:
            raise _FormatError(f"varint runs past byte {end}")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    raise _FormatError("varint longer than 10 bytes")


def _signed64(value: int) -> int:
    """Protobuf int64 fields are two's complement in a varint."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _proto_fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint/fixed fields, bytes for length-delimited."""
    position, end = 0, len(message)
    while position < end:
        key, position = _varint(message, position, end)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(message, position, end)
            yield number, value
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            if position + width > end:
                raise _FormatError("fixed-width protobuf field runs past the message")
            yield number, int.from_bytes(message[position : position + width], "little")
            position += width
        elif wire_type == 2:
            length, position = _varint(message, position, end)
            if position + length > end:
                raise _FormatError("length-delimited protobuf field runs past the message")
            yield number, message[position : position + length]
            position += length
        else:
            raise _FormatError(f"unsupported protobuf wire type {wire_type}")


def _int_field(value: int | bytes) -> int:
    if isinstance(value, bytes):
        raise _FormatError("expected an integer protobuf field, got a length-delimited one")
    return value


def _bytes_field(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise _FormatError("expected a length-delimited protobuf field, got an integer")
    return value


_FOOTER_SIZE = 48  # two BlockHandles padded to 40 bytes + 8-byte magic
_TABLE_MAGIC = 0xDB4775248B80FB57
_BLOCK_TRAILER_SIZE = 5  # compression type + masked crc32c
_SNAPPY = 1


def _block_handle(buffer: bytes, position: int, end: int) -> tuple[int, int, int]:
    """A BlockHandle at ``position``: (offset, size, position after it)."""
    offset, position = _varint(buffer, position, end)
    size, position = _varint(buffer, position, end)
    return offset, size, position


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs of one block: prefix-compressed keys, then the restart array."""
    if len(block) < 4:
        raise _FormatError("block shorter than its restart count")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise _FormatError(f"block of {len(block)} bytes claims {restarts} restart points")
    position, key = 0, b""
    while position < limit:
        shared, position = _varint(block, position, limit)
        unshared, position = _varint(block, position, limit)
        value_size, position = _varint(block, position, limit)
        if shared > len(key) or position + unshared + value_size > limit:
            raise _FormatError("block entry runs past the end of its block")
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        yield key, block[position : position + value_size]
        position += value_size


class _Table:
    """The LevelDB table of a ``.index`` file: footer → index block → data blocks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        if len(self.data) < _FOOTER_SIZE:
            raise _corrupt(path, f"{len(self.data)} bytes, less than the 48-byte table footer")
        magic_start = len(self.data) - 8
        (magic,) = struct.unpack_from("<Q", self.data, magic_start)
        if magic != _TABLE_MAGIC:
            raise _corrupt(path, f"table magic number is {magic:#018x}, not {_TABLE_MAGIC:#018x}")
        try:  # the metaindex handle comes first; bundles keep nothing in that block
            _, _, position = _block_handle(self.data, len(self.data) - _FOOTER_SIZE, magic_start)
            self.index_offset, self.index_size, _ = _block_handle(self.data, position, magic_start)
        except _FormatError as error:
            raise _corrupt(path, f"unreadable footer: {error}") from error

    def _block(self, offset: int, size: int) -> bytes:
        """A block's contents after checking its bounds, compression type and checksum."""
        end = offset + size + _BLOCK_TRAILER_SIZE
        if end > len(self.data) - _FOOTER_SIZE:
            raise _corrupt(
                self.path,
                f"block at offset {offset} of {size} bytes extends past the end of the table "
                f"({len(self.data)} bytes in the file)",
            )
        compression = self.data[offset + size]
        if compression == _SNAPPY:
            raise NotImplementedError(
                f"{self.path} has snappy-compressed blocks, which this reader does not decode; "
                "TensorFlow writes bundle indexes uncompressed, so re-save the checkpoint with "
                "tf.train.Saver (or tf.train.Checkpoint) to get a standard one"
            )
        if compression != 0:
            raise _corrupt(self.path, f"unknown block compression type {compression}")
        (stored,) = struct.unpack_from("<I", self.data, offset + size + 1)
        if masked_crc32c(crc32c(self.data[offset : offset + size + 1])) != stored:
            raise _corrupt(self.path, f"checksum mismatch in the block at offset {offset}")
        return self.data[offset : offset + size]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the table, in key order."""
        try:
            for _, handle in _block_entries(self._block(self.index_offset, self.index_size)):
                offset, size, _ = _block_handle(handle, 0, len(handle))
                yield from _block_entries(self._block(offset, size))
        except _FormatError as error:
            raise _corrupt(self.path, str(error)) from error


# --------------------------------------------------------------------------------------------------
# Bundle protos.
# --------------------------------------------------------------------------------------------------

# TF DataType enum → (name, numpy little-endian dtype); None = recognised but not readable here.
_DTYPES: dict[int, tuple[str, np.dtype | None]] = {
    1: ("float32", np.dtype("<f4")),
    2: ("float64", np.dtype("<f8")),
    3: ("int32", np.dtype("<i4")),
    4: ("uint8", np.dtype("u1")),
    5: ("int16", np.dtype("<i2")),
    6: ("int8", np.dtype("i1")),
    7: ("string", None),
    9: ("int64", np.dtype("<i8")),
    10: ("bool", np.dtype("?")),
    14: ("bfloat16", None),
    19: ("float16", np.dtype("<f2")),
}
_NUMPY_DTYPES = {name: dtype for name, dtype in _DTYPES.values() if dtype is not None}


@dataclass(frozen=True)
class TensorEntry:
    """Where one variable's bytes live and what they are (a decoded ``BundleEntryProto``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int
    partitioned: bool = False


def _parse_shape(message: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated dim {size, name} (field 2), unknown_rank (field 3)."""
    dims: list[int] = []
    for number, value in _proto_fields(message):
        if number == 2:
            sizes = [_int_field(v) for n, v in _proto_fields(_bytes_field(value)) if n == 1]
            dims.append(_signed64(sizes[-1]) if sizes else 0)
        elif number == 3 and _int_field(value):
            raise _FormatError("tensor of unknown rank")
    if any(size < 0 for size in dims):
        raise _FormatError(f"tensor with unknown dimensions {tuple(dims)}")
    return tuple(dims)


def _parse_entry(name: str, message: bytes) -> TensorEntry:
    """BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6, slices 7."""
    dtype_code = 0
    shape: tuple[int, ...] = ()
    shard = offset = size = crc = 0
    partitioned = False
    for number, value in _proto_fields(message):
        if number == 1:
            dtype_code = _int_field(value)
        elif number == 2:
            shape = _parse_shape(_bytes_field(value))
        elif number == 3:
            shard = _int_field(value)
        elif number == 4:
            offset = _signed64(_int_field(value))
        elif number == 5:
            size = _signed64(_int_field(value))
        elif number == 6:
            crc = _int_field(value)
        elif number == 7:
            partitioned = True
    if offset < 0 or size < 0:
        raise _FormatError(f"{name}: negative offset {offset} or size {size}")
    dtype = _DTYPES[dtype_code][0] if dtype_code in _DTYPES else f"DataType {dtype_code}"
    return TensorEntry(name, dtype, shape, shard, offset, size, crc, partitioned)


def _parse_header(message: bytes) -> tuple[int, int]:
    """BundleHeaderProto: num_shards 1, endianness 2 (0 = little); version 3 is not needed."""
    num_shards, endianness = 1, 0
    for number, value in _proto_fields(message):
        if number == 1:
            num_shards = _int_field(value)
        elif number == 2:
            endianness = _int_field(value)
    return num_shards, endianness


# --------------------------------------------------------------------------------------------------
# Locating a checkpoint.
# --------------------------------------------------------------------------------------------------

_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_LATEST = re.compile(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)


def _index_of(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _latest_in_state_file(folder: Path) -> Path | None:
    """The prefix the folder's ``checkpoint`` file names, if that prefix is present."""
    state = folder / "checkpoint"
    if not state.is_file():
        return None
    match = _LATEST.search(state.read_text(encoding="utf-8", errors="replace"))
    if match is None:
        return None
    # Text-format protobuf strings use C escapes, which a Python bytes literal shares; non-ASCII
    # characters (a bytes literal cannot hold them) become \x escapes of their UTF-8 bytes.
    escaped = match.group(1).encode("utf-8").decode("ascii", errors="backslashreplace")
    named = ast.literal_eval(f'b"{escaped}"').decode("utf-8", errors="replace")
    candidates = [folder / named]  # relative (save_relative_paths) or absolute
    # An absolute path from the machine that trained it: the files usually sit beside `checkpoint`.
    candidates.append(folder / re.split(r"[\\/]", named)[-1])
    return next((prefix for prefix in candidates if _index_of(prefix).is_file()), None)


def resolve_checkpoint_prefix(path: str | os.PathLike[str]) -> Path:
    """The bundle prefix for a folder, a prefix, or one of its ``.index`` / ``.data-*`` files.

    A folder is resolved through its ``checkpoint`` file (the latest checkpoint, as TF does) and
    otherwise through its single ``*.index`` file.
    """
    path = Path(path)
    if path.is_dir():
        latest = _latest_in_state_file(path)
        if latest is not None:
            return latest
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        found = ", ".join(p.name for p in indexes) if indexes else "none"
        raise FileNotFoundError(
            f"cannot tell which TF checkpoint to read in {path}: looked for a `checkpoint` file "
            f"naming an existing prefix, then for a single *.index file (found: {found}); "
            f"pass the prefix (e.g. {path / 'model.ckpt-112590'}) instead — "
            f"{_WHAT_A_CHECKPOINT_IS}"
        )
    if path.name.endswith(".index"):
        path = path.with_suffix("")
    elif _DATA_SUFFIX.search(path.name):
        path = path.with_name(_DATA_SUFFIX.sub("", path.name))
    if not _index_of(path).is_file():
        raise FileNotFoundError(
            f"no TF checkpoint at {path}: looked for {_index_of(path)}; {_WHAT_A_CHECKPOINT_IS}"
        )
    return path


# --------------------------------------------------------------------------------------------------
# The reader.
# --------------------------------------------------------------------------------------------------


class TFCheckpointReader:
    """Variables of a TF1 name-based checkpoint by name, as numpy arrays.

    Opening parses and validates the index and checks that every data shard exists and is long
    enough for its tensors; ``read`` then costs one seek + read per tensor, and checks the bytes
    against the crc32c TensorFlow stored for them (``verify_checksums=False`` skips that: a
    flipped byte then yields a silently wrong value).
    """

    def __init__(self, path: str | os.PathLike[str], *, verify_checksums: bool = True) -> None:
        self.prefix = resolve_checkpoint_prefix(path)
        self.verify_checksums = verify_checksums
        index = _index_of(self.prefix)
        self._entries: dict[str, TensorEntry] = {}
        header: tuple[int, int] | None = None
        try:
            for key, value in _Table(index).items():
                if key == b"":
                    header = _parse_header(value)
                elif not key.startswith(b"\x00"):  # "\x00…" keys are slices of a partitioned var
                    name = key.decode("utf-8", errors="replace")
                    self._entries[name] = _parse_entry(name, value)
        except _FormatError as error:
            raise _corrupt(index, str(error)) from error
        if header is None:
            raise _corrupt(index, "no bundle header (the entry with the empty key)")
        num_shards, endianness = header
        if endianness != 0:
            raise NotImplementedError(
                f"{index} was written big-endian; only little-endian bundles are supported"
            )
        if num_shards < 1:
            raise _corrupt(index, f"bundle header says {num_shards} data shards")
        self._shards = [
            self.prefix.with_name(f"{self.prefix.name}.data-{i:05d}-of-{num_shards:05d}")
            for i in range(num_shards)
        ]
        self._check_data_files(index)

    def _check_data_files(self, index: Path) -> None:
        """Every shard is present and long enough for the tensors the index places in it."""
        needed = [0] * len(self._shards)
        for entry in self._entries.values():
            if not 0 <= entry.shard < len(self._shards):
                raise _corrupt(
                    index, f"{entry.name} is in shard {entry.shard} of {len(self._shards)}"
                )
            needed[entry.shard] = max(needed[entry.shard], entry.offset + entry.size)
        for shard, path in enumerate(self._shards):
            if not path.is_file():
                raise FileNotFoundError(
                    f"checkpoint data file {path} is missing: its index {index.name} says the "
                    f"tensors are spread over {len(self._shards)} .data-* file(s); copy every one "
                    "of them next to the .index file"
                )
            if path.stat().st_size < needed[shard]:
                raise _corrupt(
                    path,
                    f"{path.stat().st_size} bytes, but the index places tensors up to byte "
                    f"{needed[shard]}",
                )

    def keys(self) -> list[str]:
        """Variable names in the index's (sorted) order, without the bundle header."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> TensorEntry:
        """The index entry of ``name`` (dtype, shape, where its bytes are)."""
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"{name!r} is not in the checkpoint {self.prefix}; see .keys() for what it holds"
            ) from None

    def _read(self, entry: TensorEntry, handle: BufferedReader) -> np.ndarray:
        """One tensor from an open data shard, validated (and checksummed if asked)."""
        if entry.partitioned:
            raise NotImplementedError(
                f"{entry.name} is a partitioned variable (stored as slices), which this reader "
                "does not assemble"
            )
        dtype = _NUMPY_DTYPES.get(entry.dtype)
        if dtype is None:
            raise NotImplementedError(
                f"{entry.name} has dtype {entry.dtype}, which this numpy reader does not decode "
                f"(supported: {', '.join(sorted(_NUMPY_DTYPES))})"
            )
        count = int(np.prod(entry.shape, dtype=np.int64))
        path = self._shards[entry.shard]
        if count * dtype.itemsize != entry.size:
            raise _corrupt(
                _index_of(self.prefix),
                f"{entry.name} has {entry.size} bytes, but shape {entry.shape} of {entry.dtype} "
                f"needs {count * dtype.itemsize}",
            )
        array = np.empty(count, dtype=dtype)
        handle.seek(entry.offset)
        if handle.readinto(array.view(np.uint8).data) != entry.size:
            raise _corrupt(path, f"{entry.name} runs past the end of the file")
        if self.verify_checksums and masked_crc32c(crc32c(array)) != entry.crc32c:
            raise _corrupt(path, f"checksum mismatch in the bytes of {entry.name}")
        return array.reshape(entry.shape)

    def read(self, name: str) -> np.ndarray:
        """The variable as a new numpy array of its dtype and shape."""
        entry = self.entry(name)
        with self._shards[entry.shard].open("rb") as handle:
            return self._read(entry, handle)

    def read_all(self, filter: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
        """Every variable (or those for which ``filter(name)`` is true) by name."""
        names = [name for name in self._entries if filter is None or filter(name)]
        with ExitStack() as stack:
            handles: dict[int, BufferedReader] = {}
            arrays = {}
            for name in names:
                entry = self._entries[name]
                if entry.shard not in handles:
                    handles[entry.shard] = stack.enter_context(self._shards[entry.shard].open("rb"))
                arrays[name] = self._read(entry, handles[entry.shard])
        return arrays

    @property
    def global_step(self) -> int | None:
        """The training step the checkpoint was saved at (None if it has no ``global_step``)."""
        if "global_step" not in self._entries:
            return None
        step = self.read("global_step")
        return int(step.reshape(-1)[0]) if step.size == 1 else None
