"""``convert-tf`` on damaged input fails instead of writing garbage (issue #10, item 3).

The independent references are the original's own files: the crc32c that TensorFlow stored for
each tensor, and the golden logits TensorFlow computed from the checkpoint.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from assembled_lightning.cli import main
from assembled_lightning.weights.convert_tf import convert_tf_checkpoint
from assembled_lightning.weights.tf_checkpoint import CorruptCheckpointError, TFCheckpointReader

VANILLA = "model.ckpt-140400"
DENSE = "resnet_model/dense/kernel"


def copy_fixture(reference_dir: Path, tmp_path: Path, folder: str = "vanilla_r50_thin") -> Path:
    copy = tmp_path / folder
    shutil.copytree(reference_dir / "tf" / folder, copy)
    return copy


def flip_bytes(folder: Path, name: str, count: int = 2000) -> None:
    """XOR ``count`` bytes spread over the stored bytes of variable ``name``."""
    entry = TFCheckpointReader(folder, verify_checksums=False).entry(name)
    data = folder / f"{VANILLA}.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    for position in np.linspace(entry.offset, entry.offset + entry.size - 1, count, dtype=int):
        raw[position] ^= 0x5A
    data.write_bytes(bytes(raw))


def convert(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["convert-tf", str(folder), "--model", "resnet50", "--out", str(out), *extra]


def test_flipped_data_bytes_fail_the_conversion_and_write_nothing(
    reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = copy_fixture(reference_dir, tmp_path)
    flip_bytes(folder, DENSE)
    out = tmp_path / "converted"
    assert main(convert(folder, out)) == 2
    error = capsys.readouterr().err
    assert f"checksum mismatch in the bytes of {DENSE}" in error and "re-download" in error
    assert not (out / "model.safetensors").exists()


def test_the_reader_verifies_checksums_by_default(reference_dir: Path, tmp_path: Path) -> None:
    folder = copy_fixture(reference_dir, tmp_path)
    flip_bytes(folder, DENSE, count=1)
    with pytest.raises(CorruptCheckpointError, match="checksum mismatch"):
        TFCheckpointReader(folder).read(DENSE)
    TFCheckpointReader(folder, verify_checksums=False).read(DENSE)  # the opt-out still reads


def expected_tolerance(golden: Path) -> float:
    """1e-4 of the logits' scale (at least 1), the documented rule, from the finite values."""
    logits = np.load(golden)["logits"]
    return 1e-4 * max(1.0, float(np.abs(logits[np.isfinite(logits)]).max()))


def wrong_golden(reference_dir: Path, tmp_path: Path, error: float) -> Path:
    golden = dict(np.load(reference_dir / "tf" / "vanilla_r50_thin" / "golden.npz"))
    logits = golden["logits"].copy()
    if np.isnan(error):
        logits[0, 3] = error  # one NaN logit: max |diff| is NaN, which compares as "not >"
    else:
        logits += np.float32(error)
    golden["logits"] = logits
    path = tmp_path / "wrong_golden.npz"
    np.savez(path, **golden)
    return path


@pytest.mark.parametrize("error", [0.05, float("nan")], ids=["offset", "nan"])
def test_a_wrong_golden_file_fails_with_the_tolerance_printed(
    reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], error: float
) -> None:
    golden = wrong_golden(reference_dir, tmp_path, error)
    out = tmp_path / "converted"
    fixture = reference_dir / "tf" / "vanilla_r50_thin"
    assert main(convert(fixture, out, "--golden", str(golden))) == 2
    message = capsys.readouterr().err
    assert "logits differ from the golden TF logits" in message and str(golden) in message
    assert ("nan" if error != error else "0.05") in message
    match = re.search(r"tolerance ([0-9.e+-]+)", message)
    assert match is not None
    assert float(match.group(1)) == pytest.approx(expected_tolerance(golden), rel=0.01)
    assert not (out / "model.safetensors").exists()


def test_the_real_golden_file_passes_and_the_report_prints_the_tolerance(
    reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = reference_dir / "tf" / "vanilla_r50_thin"
    out = tmp_path / "converted"
    assert main(convert(fixture, out, "--golden", str(fixture / "golden.npz"))) == 0
    match = re.search(
        r"max \|ours - golden TF\| = \S+ \(tolerance (\S+)\)", capsys.readouterr().out
    )
    assert match is not None
    assert float(match.group(1)) == pytest.approx(
        expected_tolerance(fixture / "golden.npz"), rel=0.01
    )


def test_vanilla_checkpoints_default_to_the_originals_tf_same_pool(
    reference_dir: Path, tmp_path: Path
) -> None:
    """No --set needed: the golden logits (TF 'SAME' pool, ORIGINAL.md §0) are reproduced."""
    fixture = reference_dir / "tf" / "vanilla_r50_thin"
    report = convert_tf_checkpoint(
        fixture, "resnet50", tmp_path / "out", golden=fixture / "golden.npz"
    )
    assert report.max_logit_diff is not None and report.max_logit_diff <= 1e-4
    config = json.loads((tmp_path / "out" / "config.json").read_text())["config"]
    assert config["stem_pool_padding"] == "tf_same"
    assert any("stem_pool_padding='tf_same'" in note for note in report.notes)


def test_structure_without_variables_is_warned_about_unless_golden_confirms_it(
    reference_dir: Path, tmp_path: Path
) -> None:
    fixture = reference_dir / "tf" / "assemble_r50_thin"
    with pytest.warns(UserWarning, match=r"anti_alias.*no variables.*--golden"):
        convert_tf_checkpoint(fixture, "assemble_resnet50", tmp_path / "a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = convert_tf_checkpoint(
            fixture, "assemble_resnet50", tmp_path / "b", golden=fixture / "golden.npz"
        )
    assert any("confirmed by the golden logits" in note for note in report.notes)


def test_an_explicit_symmetric_pool_on_a_vanilla_checkpoint_is_warned_about(
    reference_dir: Path, tmp_path: Path
) -> None:
    fixture = reference_dir / "tf" / "vanilla_r50_thin"
    with pytest.warns(UserWarning) as record:
        convert_tf_checkpoint(
            fixture, "resnet50", tmp_path / "out", overrides={"stem_pool_padding": "symmetric"}
        )
    messages = [str(warning.message) for warning in record]
    assert any(re.search(r"stem_pool_padding='symmetric' differs.*'tf_same'", m) for m in messages)
    assert any("cannot confirm stem_pool_padding='symmetric'" in m for m in messages)


def test_a_model_without_a_tf_layout_gets_the_intended_error(
    reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = reference_dir / "tf" / "vanilla_r50_thin"
    args = ["convert-tf", str(fixture), "--model", "mobilenet_v1", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "mobilenet_v1 has no TF checkpoint layout" in error and "resnet50" in error
