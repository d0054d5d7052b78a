"""The numpy-only TF bundle reader, on the original's real checkpoints and on hand-built bundles."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import assembled_lightning.weights.crc32c as crc32c_module
from assembled_lightning.weights.tf_checkpoint import (
    CorruptCheckpointError,
    TFCheckpointReader,
    crc32c,
    resolve_checkpoint_prefix,
)

TF_FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "tf"
FIXTURES = {
    # folder: (prefix, entries, model variables, Momentum slots, global_step)
    "assemble_r50_thin": ("model.ckpt-112590", 803, 496, 306, 112590),
    "vanilla_r50_thin": ("model.ckpt-140400", 429, 267, 161, 140400),
}


def fixture_dir(folder: str) -> Path:
    path = TF_FIXTURES / folder
    if not (path / "checkpoint").is_file():
        pytest.fail(
            f"TF checkpoint fixture not found at {path}: these tests need the project's shared/ "
            "folder beside the repository (../shared/reference/tf/, see its MANIFEST.md)"
        )
    return path


def copy_checkpoint(tmp_path: Path, folder: str = "vanilla_r50_thin") -> Path:
    """A writable copy of a fixture's checkpoint files (without its .npz files)."""
    prefix = FIXTURES[folder][0]
    target = tmp_path / folder
    target.mkdir()
    for source in fixture_dir(folder).iterdir():
        if source.name == "checkpoint" or source.name.startswith(prefix):
            shutil.copyfile(source, target / source.name)
    return target


# --------------------------------------------------------------------------------------------------
# The real checkpoints written by the original code.
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", sorted(FIXTURES))
def test_reads_every_variable_exactly(folder: str) -> None:
    prefix, entries, model_vars, slots, step = FIXTURES[folder]
    reader = TFCheckpointReader(fixture_dir(folder))
    assert reader.prefix == fixture_dir(folder) / prefix
    assert len(reader) == len(reader.keys()) == entries
    assert reader.global_step == step
    assert reader.entry("global_step").dtype == "int64" and reader.entry("global_step").shape == ()

    with np.load(fixture_dir(folder) / "variables.npz") as npz:
        expected = dict(npz)
    assert len(expected) == model_vars
    actual = reader.read_all(lambda name: not name.endswith("/Momentum") and name != "global_step")
    assert set(actual) == set(expected)
    for name in expected:
        assert actual[name].dtype == expected[name].dtype, name
        assert actual[name].shape == expected[name].shape, name
        assert np.abs(actual[name] - expected[name]).max(initial=0.0) == 0.0, name
        assert reader.entry(name).shape == expected[name].shape

    names = reader.keys()
    momentum = [name for name in names if name.endswith("/Momentum")]
    assert len(momentum) == slots
    assert set(names) == set(expected) | set(momentum) | {"global_step"}
    for slot in momentum:
        variable = slot.removesuffix("/Momentum")
        assert variable in expected and not variable.endswith(("/moving_mean", "/moving_variance"))
        array = reader.read(slot)
        assert array.shape == expected[variable].shape and array.dtype == np.float32


def test_folder_prefix_index_and_data_paths_all_resolve() -> None:
    folder = fixture_dir("vanilla_r50_thin")
    prefix = folder / "model.ckpt-140400"
    for path in (folder, prefix, f"{prefix}.index", f"{prefix}.data-00000-of-00001"):
        assert resolve_checkpoint_prefix(path) == prefix
        assert TFCheckpointReader(path).prefix == prefix


def test_checkpoint_file_paths_from_another_machine_and_fallbacks(tmp_path: Path) -> None:
    folder = copy_checkpoint(tmp_path)
    prefix = folder / "model.ckpt-140400"
    state = folder / "checkpoint"
    state.write_text('model_checkpoint_path: "/home/someone/train/model.ckpt-140400"\n')
    assert resolve_checkpoint_prefix(folder) == prefix
    state.write_text(f'model_checkpoint_path: "{prefix}"\n')  # absolute, and present
    assert resolve_checkpoint_prefix(folder) == prefix
    state.write_text('model_checkpoint_path: "model.ckpt-999"\n')  # names a deleted checkpoint
    assert resolve_checkpoint_prefix(folder) == prefix  # → the single .index
    state.unlink()
    assert resolve_checkpoint_prefix(folder) == prefix
    shutil.copyfile(f"{prefix}.index", folder / "model.ckpt-5.index")
    with pytest.raises(FileNotFoundError, match=r"model\.ckpt-140400\.index, model\.ckpt-5"):
        resolve_checkpoint_prefix(folder)


def test_checksums_pass_on_the_real_file_and_catch_one_flipped_byte(tmp_path: Path) -> None:
    folder = copy_checkpoint(tmp_path)
    assert len(TFCheckpointReader(folder, verify_checksums=True).read_all()) == 429

    name = "resnet_model/dense/kernel"
    entry = TFCheckpointReader(folder).entry(name)
    data = folder / "model.ckpt-140400.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[entry.offset + entry.size // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    TFCheckpointReader(folder, verify_checksums=False).read(name)  # unchecked: silently wrong
    reader = TFCheckpointReader(folder, verify_checksums=True)
    with pytest.raises(CorruptCheckpointError, match=f"checksum mismatch in the bytes of {name}"):
        reader.read(name)
    reader.read("global_step")  # the other tensors are intact


# --------------------------------------------------------------------------------------------------
# Damaged or missing files.
# --------------------------------------------------------------------------------------------------


def test_truncated_data_file_is_reported(tmp_path: Path) -> None:
    folder = copy_checkpoint(tmp_path)
    data = folder / "model.ckpt-140400.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-1])
    with pytest.raises(
        CorruptCheckpointError, match=r"corrupt or truncated.*re-download or re-copy"
    ):
        TFCheckpointReader(folder)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], "magic number"),
        (lambda raw: raw[:-8] + bytes(8), "magic number"),
        (lambda raw: raw[:20], "less than the 48-byte table footer"),
        (lambda raw: bytes([raw[0] ^ 0xFF]) + raw[1:], "checksum mismatch in the block"),
    ],
    ids=["truncated", "magic", "stub", "flipped-byte"],
)
def test_damaged_index_is_reported(
    tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    folder = copy_checkpoint(tmp_path)
    index = folder / "model.ckpt-140400.index"
    index.write_bytes(damage(index.read_bytes()))
    with pytest.raises(CorruptCheckpointError, match=f"{message}.*re-download or re-copy"):
        TFCheckpointReader(folder)


def test_missing_files_say_what_a_checkpoint_is(tmp_path: Path) -> None:
    folder = copy_checkpoint(tmp_path)
    (folder / "model.ckpt-140400.data-00000-of-00001").unlink()
    with pytest.raises(FileNotFoundError, match=r"data-00000-of-00001 is missing"):
        TFCheckpointReader(folder)
    with pytest.raises(FileNotFoundError, match=r"a TF1 checkpoint is <prefix>\.index"):
        TFCheckpointReader(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"found: none.*a TF1 checkpoint is"):
        TFCheckpointReader(tmp_path)  # a folder without any checkpoint
    with pytest.raises(KeyError, match="not in the checkpoint"):
        TFCheckpointReader(fixture_dir("vanilla_r50_thin")).read("nope")


# --------------------------------------------------------------------------------------------------
# Hand-built bundles, for what the real files do not contain. The writer follows the format
# description (ORIGINAL.md §2.1) independently of the reader.
# --------------------------------------------------------------------------------------------------

DT_CODES = {
    "float32": 1,
    "float64": 2,
    "int32": 3,
    "uint8": 4,
    "int16": 5,
    "int8": 6,
    "int64": 9,
    "bool": 10,
    "float16": 19,
}


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def masked_crc32c(data: bytes) -> int:
    """As stored in block trailers and in BundleEntryProto.crc32c (checked on the fixtures)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def block(items: list[tuple[bytes, bytes]]) -> bytes:
    """A table block with prefix-compressed keys and a restart point every 2 entries."""
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(items):
        shared = 0
        if i % 2:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        previous = key
    return (
        bytes(out) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))
    )


def table(
    items: list[tuple[bytes, bytes]], compression: int = 0, index_size_extra: int = 0
) -> bytes:
    """An SSTable: one data block, an empty metaindex block, the index block and the footer."""
    out = bytearray()

    def add(contents: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(contents))
        trailed = contents + bytes([compression])
        out.extend(trailed + struct.pack("<I", masked_crc32c(trailed)))
        return handle

    data_handle = add(block(items))
    meta_handle = add(block([]))
    offset = len(out)
    index_contents = block([(items[-1][0], data_handle)])
    add(index_contents)
    index_handle = varint(offset) + varint(len(index_contents) + index_size_extra)
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out) + footer


def write_bundle(
    prefix: Path,
    tensors: dict[str, np.ndarray | tuple[int, tuple[int, ...], bytes]],
    num_shards: int = 1,
    **table_options: int,
) -> Path:
    """Tensors round-robin over the shards; (dtype code, shape, bytes) for dtypes numpy lacks."""
    shards = [bytearray() for _ in range(num_shards)]
    items = [(b"", field(1, num_shards) + field(2, 0) + field(3, field(1, 1)))]
    for i, name in enumerate(sorted(tensors)):
        value = tensors[name]
        if isinstance(value, np.ndarray):
            value = (
                DT_CODES[value.dtype.name],
                value.shape,
                value.astype(value.dtype.newbyteorder("<")).tobytes(),
            )
        code, shape, raw = value
        shard = shards[i % num_shards]
        dims = b"".join(field(2, field(1, size)) for size in shape)
        entry = field(1, code) + field(2, dims) + field(3, i % num_shards) + field(4, len(shard))
        entry += field(5, len(raw)) + varint(6 << 3 | 5) + struct.pack("<I", masked_crc32c(raw))
        items.append((name.encode(), entry))
        shard.extend(raw)
    prefix.with_name(prefix.name + ".index").write_bytes(table(items, **table_options))
    for i, shard in enumerate(shards):
        prefix.with_name(f"{prefix.name}.data-{i:05d}-of-{num_shards:05d}").write_bytes(shard)
    return prefix


def test_every_supported_dtype_over_two_shards(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {f"var/{dtype}": (rng.normal(size=(3, 5)) * 50).astype(dtype) for dtype in DT_CODES}
    tensors["scalar"] = np.array(7.5, dtype=np.float64)
    tensors["empty"] = np.zeros((0, 4), dtype=np.float32)
    tensors["var/bool"] = rng.normal(size=(4, 2)) > 0
    prefix = write_bundle(tmp_path / "model.ckpt-3", tensors, num_shards=2)
    reader = TFCheckpointReader(prefix, verify_checksums=True)
    assert reader.keys() == sorted(tensors) and reader.global_step is None
    assert {reader.entry(name).shard for name in tensors} == {0, 1}
    for name, array in reader.read_all().items():
        assert array.dtype == tensors[name].dtype and array.shape == tensors[name].shape, name
        assert np.array_equal(array, tensors[name]), name
    assert "var/int8" in reader and "missing" not in reader


def test_bfloat16_and_strings_are_refused_clearly(tmp_path: Path) -> None:
    prefix = write_bundle(
        tmp_path / "ckpt",
        {"bf16": (14, (2,), bytes(4)), "text": (7, (), b"\x05hello"), "ok": np.ones(2, np.int32)},
    )
    reader = TFCheckpointReader(prefix)
    with pytest.raises(NotImplementedError, match=r"dtype bfloat16.*supported: bool, float16"):
        reader.read("bf16")
    with pytest.raises(NotImplementedError, match="dtype string"):
        reader.read("text")
    assert reader.read("ok").tolist() == [1, 1]
    assert reader.read_all(lambda name: name == "ok").keys() == {"ok"}


def test_size_not_matching_the_shape_is_reported(tmp_path: Path) -> None:
    prefix = write_bundle(tmp_path / "ckpt", {"w": (1, (2, 3), bytes(20))})
    with pytest.raises(
        CorruptCheckpointError, match=r"20 bytes, but shape \(2, 3\) of float32 needs 24"
    ):
        TFCheckpointReader(prefix).read("w")


def test_block_past_the_end_and_snappy_are_reported(tmp_path: Path) -> None:
    tensors = {"w": np.ones(3, np.float32)}
    prefix = write_bundle(tmp_path / "ckpt", tensors, index_size_extra=10_000)
    with pytest.raises(CorruptCheckpointError, match="extends past the end"):
        TFCheckpointReader(prefix)
    prefix = write_bundle(tmp_path / "ckpt", tensors, compression=1)
    with pytest.raises(NotImplementedError, match="snappy"):
        TFCheckpointReader(prefix)
    prefix = write_bundle(tmp_path / "ckpt", tensors, compression=7)
    with pytest.raises(CorruptCheckpointError, match="compression type 7"):
        TFCheckpointReader(prefix)


# --------------------------------------------------------------------------------------------------
# CRC-32C.
# --------------------------------------------------------------------------------------------------


def reference_crc32c(data: bytes) -> int:
    """Bit by bit, straight from the definition (reflected Castagnoli polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_matches_the_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    rng = np.random.default_rng(1)
    monkeypatch.setattr(crc32c_module, "_CRC_CHUNK", 1 << 12)  # exercise the chunk chaining
    for size in (0, 1, 3, 4, 5, 2047, 2048, 2049, 4099, 4100, 4101, 9001, 3 * 4096 + 4):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert crc32c(data) == reference_crc32c(data), size
