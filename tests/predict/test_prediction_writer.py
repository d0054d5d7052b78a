"""TopKPredictionWriter through the real CLI on a folder of unlabelled images: one row per image,
ids = paths relative to the folder, the classes and probabilities of a forward pass done here by
hand (PIL decoding, the original's crop and mean subtraction, softmax, top-k), names from the
training data's classes; CSV and JSON alike; clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from prediction_fixtures import EVAL_TYPE, UNLABELLED, Trained
from torchvision.datasets import ImageFolder

from assembled_lightning import create_model
from assembled_lightning.cli import main
from assembled_lightning.data import UnlabelledImageFolderDataModule
from assembled_lightning.predict import TopKPredictionWriter
from assembled_lightning.predict.names import output_names
from assembled_lightning.predict.writer import merge_parts
from assembled_lightning.tasks import ClassificationTask
from assembled_lightning.weights import save_pretrained

ORIGINAL_MEAN_RGB = np.array([123.68, 116.78, 103.94], dtype=np.float32)  # ORIGINAL.md §4
CROP = 32


def manual_probabilities(trained: Trained) -> dict[str, np.ndarray]:
    """Softmax of the checkpoint's model on every image, preprocessed here: PIL's RGB, then the
    centre 32×32 crop of the 36-pixel shorter side (no resize needed), minus the RGB means."""
    content = torch.load(trained.checkpoint, map_location="cpu", weights_only=True)
    hparams = content["hyper_parameters"]
    model = create_model(hparams["model"], num_classes=3, **hparams["model_overrides"])
    state = {k.removeprefix("model."): v for k, v in content["state_dict"].items()}
    model.load_state_dict(state)
    model.eval()
    probabilities = {}
    for relative in UNLABELLED:
        pixels = np.asarray(Image.open(trained.images / relative).convert("RGB"), np.float32)
        top, left = (pixels.shape[0] - CROP) // 2, (pixels.shape[1] - CROP) // 2
        crop = pixels[top : top + CROP, left : left + CROP] - ORIGINAL_MEAN_RGB
        with torch.no_grad():
            logits = model(torch.from_numpy(crop).permute(2, 0, 1)[None])
        probabilities[relative] = torch.softmax(logits.double(), -1)[0].numpy()
    return probabilities


def predict_command(trained: Trained, *extra: str) -> list[str]:
    return [
        "predict",
        "--config",
        "quickstart",
        f"--ckpt_path={trained.checkpoint}",
        f"--trainer.default_root_dir={trained.checkpoint.parent}",  # its config.yaml goes there
        "--data=assembled_lightning.data.UnlabelledImageFolderDataModule",
        f"--data.root={trained.images}",
        f"--data.eval_type={EVAL_TYPE}",
        "--data.batch_size=3",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def csv_rows(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    output = tmp_path_factory.mktemp("csv") / "predictions.csv"
    command = predict_command(
        trained,
        "--trainer.callbacks+=assembled_lightning.predict.TopKPredictionWriter",
        f"--trainer.callbacks.output={output}",
        "--trainer.callbacks.top_k=2",
    )
    assert main(command) == 0
    with output.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_one_row_per_image_matching_a_manual_forward_pass(
    trained: Trained, csv_rows: list[dict[str, str]]
) -> None:
    assert [row["sample_id"] for row in csv_rows] == sorted(UNLABELLED)  # notes.txt left out
    classes = ImageFolder(str(trained.train_root)).classes  # torchvision's class order
    expected = manual_probabilities(trained)
    for row in csv_rows:
        reference = expected[row["sample_id"]]
        order = np.argsort(-reference, kind="stable")[:2]
        got = [float(row[f"top{k}_probability"]) for k in (1, 2)]
        assert [int(row[f"top{k}_class"]) for k in (1, 2)] == order.tolist()
        assert [row[f"top{k}_name"] for k in (1, 2)] == [classes[c] for c in order]
        np.testing.assert_allclose(got, reference[order], rtol=0, atol=2e-6)
        assert got[0] >= got[1] and sum(got) <= 1 + 1e-6
        assert set(row) == {"sample_id"} | {
            f"top{k}_{field}" for k in (1, 2) for field in ("class", "name", "probability")
        }


def test_shipped_predict_recipe_writes_the_same_predictions_as_json(
    trained: Trained, csv_rows: list[dict[str, str]], tmp_path: Path
) -> None:
    output = tmp_path / "out" / "predictions.json"
    command = [
        "predict",
        "--config",
        "predict/folder",
        f"--ckpt_path={trained.checkpoint}",
        f"--data.root={trained.images}",
        f"--data.eval_type={EVAL_TYPE}",
        "--data.num_workers=0",
        "--data.batch_size=3",  # the CSV run's batches: another split can move a float32 ulp
        f"--trainer.callbacks.output={output}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
    ]
    assert main(command) == 0
    records = json.loads(output.read_text())
    assert [r["sample_id"] for r in records] == [row["sample_id"] for row in csv_rows]
    classes = ImageFolder(str(trained.train_root)).classes
    for record, row in zip(records, csv_rows, strict=True):
        assert len(record["top_k"]) == 3  # default: 5, or every class of a smaller head
        assert sorted(entry["class"] for entry in record["top_k"]) == [0, 1, 2]
        assert sum(entry["probability"] for entry in record["top_k"]) == pytest.approx(1, abs=1e-6)
        for k, entry in enumerate(record["top_k"][:2], start=1):
            assert entry["class"] == int(row[f"top{k}_class"])
            assert entry["name"] == classes[entry["class"]] == row[f"top{k}_name"]
            assert entry["probability"] == float(row[f"top{k}_probability"])
    assert sorted(p.name for p in output.parent.iterdir()) == ["predictions.json"]  # no parts


def run_predict(trained: Trained, writer: TopKPredictionWriter) -> None:
    task = ClassificationTask.load_from_checkpoint(trained.checkpoint)
    data = UnlabelledImageFolderDataModule(trained.images, batch_size=4, eval_type=EVAL_TYPE)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=[writer],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.predict(task, datamodule=data, return_predictions=False)


def test_writer_categories_win_and_an_existing_output_is_kept_unless_asked(
    trained: Trained, tmp_path: Path
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("zero\none\ntwo\n")
    output = tmp_path / "p.csv"
    output.write_text("keep me")
    writer = TopKPredictionWriter(output, top_k=1, categories=str(names))
    with pytest.raises(FileExistsError, match="overwrite"):
        run_predict(trained, writer)
    assert output.read_text() == "keep me"
    writer = TopKPredictionWriter(output, top_k=1, categories=str(names), overwrite=True)
    run_predict(trained, writer)
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == len(UNLABELLED)
    assert all(row["top1_name"] == ["zero", "one", "two"][int(row["top1_class"])] for row in rows)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_k": 4}, "top_k=4 but the model has only 3 classes"),
        ({"categories": ["a", "b"]}, "2 class names but the model has 3 outputs"),
    ],
)
def test_a_head_that_does_not_fit_the_options_is_a_clear_error(
    trained: Trained, tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_predict(trained, TopKPredictionWriter(tmp_path / "p.json", **options))


def test_bad_format_and_top_k_are_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="did you mean 'json'"):
        TopKPredictionWriter(tmp_path / "p.out", format="jsn")
    with pytest.raises(ValueError, match=r"\.csv or \.json"):
        TopKPredictionWriter(tmp_path / "p.txt")
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        TopKPredictionWriter(tmp_path / "p.csv", top_k=0)


def test_the_checkpoint_keeps_the_training_classes(trained: Trained) -> None:
    task = ClassificationTask.load_from_checkpoint(trained.checkpoint)
    assert task.categories == ImageFolder(str(trained.train_root)).classes


def test_merge_drops_the_repeats_of_a_padding_sampler_and_orders_by_index(tmp_path: Path) -> None:
    def row(index: int, sample_id: str) -> str:
        return json.dumps({"index": index, "sample_id": sample_id, "top_k": []}) + "\n"

    # DistributedSampler(5 samples, 2 ranks) pads rank 1's share with sample 0 again
    parts = [tmp_path / "rank0.jsonl", tmp_path / "rank1.jsonl"]
    parts[0].write_text(row(0, "a") + row(2, "c") + row(4, "e"))
    parts[1].write_text(row(1, "b") + row(3, "d") + row(0, "a"))
    assert [r["sample_id"] for r in merge_parts(parts)] == ["a", "b", "c", "d", "e"]
    with pytest.raises(FileNotFoundError, match="every process sees"):
        merge_parts([*parts, tmp_path / "rank2.jsonl"])


def test_names_come_from_the_first_source_that_has_them(tmp_path: Path) -> None:
    model = create_model("resnet18", num_classes=3, base_width=8)
    meta = {"categories": ["w0", "w1", "w2"]}
    weights = save_pretrained(model, tmp_path / "w", architecture="resnet18", meta=meta)
    hparams = {"model": "resnet18", "weights": str(weights)}
    task = SimpleNamespace(categories=["t0", "t1", "t2"], hparams=hparams)
    data = SimpleNamespace(classes=["d0", "d1", "d2"])
    assert output_names(3, ["c0", "c1", "c2"], data, task) == ["c0", "c1", "c2"]
    assert output_names(3, None, data, task) == ["d0", "d1", "d2"]
    assert output_names(3, None, SimpleNamespace(classes=[]), task) == ["t0", "t1", "t2"]
    task.categories = None
    assert output_names(3, None, None, task) == ["w0", "w1", "w2"]
    assert output_names(4, None, None, task) == ["0", "1", "2", "3"]  # another head than theirs
    with pytest.raises(ValueError, match="the DataModule's classes gives 3 class names"):
        output_names(4, None, data, task)
