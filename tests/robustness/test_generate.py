"""make-imagenet-c: the official layout, the reference's pipeline (Resize(256) + CenterCrop(224)
with PIL, uint8 truncation, JPEG q85), resuming, and bad input."""

from __future__ import annotations

from pathlib import Path

import fake_imagenet_c
import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from assembled_lightning.cli import main
from assembled_lightning.robustness.generate import make_imagenet_c


def source_folder(root: Path) -> Path:
    for k, wnid in enumerate(fake_imagenet_c.WNIDS):
        fake_imagenet_c.write_square_jpeg(root / wnid / f"ILSVRC2012_val_{k + 1:08d}.JPEG", 40, k)
    Image.new("RGBA", (50, 36), (10, 200, 30, 128)).save(root / fake_imagenet_c.WNIDS[0] / "b.png")
    return root


def reference_contrast(path: Path, c: float, resize: int, crop: int) -> np.ndarray:
    """The reference generator's contrast file, computed with PIL and NumPy from its formula."""
    prepare = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop)])
    x = np.asarray(prepare(Image.open(path).convert("RGB"))) / 255.0
    means = x.mean(axis=(0, 1), keepdims=True)
    pixels = np.uint8(np.clip((x - means) * c + means, 0, 1) * 255)
    out = path.parent / "expected.jpg"
    Image.fromarray(pixels).save(out, format="JPEG", quality=85, optimize=True)
    return np.asarray(Image.open(out)).astype(int)


def test_writes_the_reference_files_in_the_official_layout(tmp_path: Path) -> None:
    source = source_folder(tmp_path / "val")
    out = tmp_path / "imagenet-c"
    summary = make_imagenet_c(
        source, out, ["contrast"], [1, 4], resize=32, crop=24, num_workers=0, progress=False
    )
    assert summary.written == 8 and summary.already_there == 0 and not summary.bad_images
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files[0] == "contrast/1/n01440764/ILSVRC2012_val_00000001.JPEG"
    assert "contrast/4/n01440764/b.JPEG" in files and len(files) == 8
    for severity, c in ((1, 0.4), (4, 0.1)):
        for wnid_dir in (out / "contrast" / str(severity)).iterdir():
            for written in wnid_dir.iterdir():
                original = next((source / wnid_dir.name).glob(written.stem + ".*"))
                expected = reference_contrast(original, c, 32, 24)
                assert Image.open(written).format == "JPEG"
                got = np.asarray(Image.open(written).convert("RGB")).astype(int)
                assert np.abs(got - expected).max() <= 1


def test_a_rerun_resumes_and_skips_finished_files(tmp_path: Path) -> None:
    source = source_folder(tmp_path / "val")
    out = tmp_path / "c"
    options = {"resize": 32, "crop": 24, "num_workers": 0, "progress": False}
    make_imagenet_c(source, out, ["gaussian_noise"], [2], **options)
    kept = out / "gaussian_noise/2/n01443537/ILSVRC2012_val_00000002.JPEG"
    lost = out / "gaussian_noise/2/n01440764/b.JPEG"
    before = kept.stat().st_mtime_ns
    lost.unlink()
    (lost.parent / "b.JPEG.partial").write_bytes(b"half")  # an interrupted write
    summary = make_imagenet_c(source, out, ["gaussian_noise"], [2], **options)
    assert (summary.written, summary.already_there) == (1, 3)
    assert kept.stat().st_mtime_ns == before and lost.is_file()
    again = make_imagenet_c(source, out, ["gaussian_noise"], [2], **options)
    assert (again.written, again.already_there) == (0, 4)


def test_bad_input_is_refused_or_skipped_with_a_message(tmp_path: Path) -> None:
    source = source_folder(tmp_path / "val")
    (source / "n01440764" / "broken.JPEG").write_bytes(b"not a jpeg")
    with pytest.warns(RuntimeWarning, match="skipping bad image"):
        summary = make_imagenet_c(
            source,
            tmp_path / "c",
            ["contrast"],
            [1],
            resize=32,
            crop=24,
            num_workers=0,
            progress=False,
        )
    assert summary.bad_images == ["n01440764/broken.JPEG"] and summary.written == 4
    with pytest.raises(ValueError, match="outside the source folder"):
        make_imagenet_c(source, source / "c", ["contrast"], [1], progress=False)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        make_imagenet_c(tmp_path / "nowhere", tmp_path / "c", ["contrast"], [1])


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = source_folder(tmp_path / "val")
    out = tmp_path / "c"
    args = ["make-imagenet-c", str(source), "--out", str(out), "--corruptions", "contrast"]
    args += ["--severities", "5", "--resize", "32", "--crop", "24", "--num-workers", "0"]
    assert main(args) == 0
    assert "wrote 4 corrupted files" in capsys.readouterr().out
    assert main([*args[:4], "--corruptions", "contrastt"]) == 2
    assert "unknown corruption 'contrastt'" in capsys.readouterr().err
