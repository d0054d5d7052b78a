"""RecallAtK gives what an independent brute-force NumPy evaluator gives (full N×N similarity
matrix, ranking by np.lexsort), for every chunking, with exact ties, distractors, duplicated
samples and half-precision inputs; and a 5-sample example worked out by hand."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from assembled_lightning.retrieval import (
    CARS_KS,
    CUB_KS,
    SOP_KS,
    RecallAtK,
    metrics,
    similarity_block_bytes,
)


def reference_recall(
    embeddings: np.ndarray, labels: np.ndarray, indexes: np.ndarray, ks: Sequence[int]
) -> dict[str, float]:
    """Recall@K by the protocol's definition, one query at a time: the first sample of each
    global index; cosine similarity in float64; neighbours are the other indices, sorted by
    (−similarity, index)."""
    _, first = np.unique(indexes, return_index=True)
    x = embeddings[first].astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels, indexes = labels[first], indexes[first]
    similarity = x @ x.T
    queries = np.flatnonzero(labels >= 0)
    hits = np.zeros(len(ks))
    for q in queries:
        others = np.flatnonzero(indexes != indexes[q])
        ranked = others[np.lexsort((indexes[others], -similarity[q, others]))]
        for i, k in enumerate(ks):
            hits[i] += np.any(labels[ranked[:k]] == labels[q])
    return {f"recall@{k}": h / len(queries) for k, h in zip(ks, hits, strict=True)}


def recall(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    indexes: torch.Tensor,
    ks: Sequence[int],
    *,
    batch: int = 64,
    **kwargs: int,
) -> dict[str, float]:
    metric = RecallAtK(ks, **kwargs)
    for start in range(0, len(labels), batch):
        part = slice(start, start + batch)
        metric.update(embeddings[part], labels[part], indexes[part])
    return {name: float(value) for name, value in metric.compute().items()}


def assert_same(got: dict[str, float], expected: dict[str, float]) -> None:
    assert list(got) == list(expected)
    for name in expected:  # one hit in 1000 queries is 1e-3: 1e-6 means the same hits
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name


def random_set(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian embeddings of random norm, 12 classes, ~10 % distractors, 10 % of the samples
    repeated under new indices, shuffled global indices."""
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(n, 16, generator=generator)
    embeddings *= torch.rand(n, 1, generator=generator) * 5 + 0.1
    labels = torch.randint(0, 12, (n,), generator=generator)
    labels[torch.rand(n, generator=generator) < 0.1] = -1
    repeat = torch.randint(0, n, (n // 10,), generator=generator)
    embeddings = torch.cat([embeddings, embeddings[repeat]])
    labels = torch.cat([labels, labels[repeat]])
    indexes = torch.randperm(len(labels), generator=generator)
    return embeddings, labels, indexes


def tied_set(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact ties everywhere: 20 distinct vectors of four ±1 among six coordinates (×1, 2 or 4),
    so every normalised entry is 0 or ±½ and every similarity a multiple of ¼, exact in any
    float order; 4 classes and distractors, so which tied sample comes first decides hits."""
    generator = torch.Generator().manual_seed(seed)
    vectors = [v for v in itertools.product((-1, 0, 1), repeat=6) if v.count(0) == 2]
    pool = torch.tensor(vectors, dtype=torch.float32)
    pool = pool[torch.randperm(len(pool), generator=generator)[:20]]
    embeddings = pool[torch.randint(0, 20, (n,), generator=generator)]
    embeddings *= 2.0 ** torch.randint(0, 3, (n, 1), generator=generator)
    labels = torch.randint(-1, 4, (n,), generator=generator)
    indexes = torch.randperm(n, generator=generator)
    return embeddings, labels, indexes


def numpy_args(
    embeddings: torch.Tensor, labels: torch.Tensor, indexes: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return embeddings.float().numpy(), labels.numpy(), indexes.numpy()


def test_five_samples_by_hand() -> None:
    r"""Unit vectors after normalisation: s0 = (1, 0), s1 = (.6, .8), s2 = (.6, −.8),
    s3 = (0, 1), s4 = (.8, .6) (a distractor).

    ======  ==========================================  ==========  ==========
    query   neighbours, nearest first (similarity)      Recall@1    Recall@2
    ======  ==========================================  ==========  ==========
    s0 (0)  s4 (.8), s1 (.6), s2 (.6) — tie, s1 first   miss (s4)   miss (s1)
    s1 (1)  s4 (.96), s3 (.8), s0 (.6), s2 (−.28)       miss (s4)   hit (s3)
    s2 (0)  s0 (.6), s4 (0), s1 (−.28), s3 (−.8)        hit         hit
    s3 (1)  s1 (.8), s4 (.6), s0 (0), s2 (−.8)          hit         hit
    ======  ==========================================  ==========  ==========

    s4 is no query: Recall@1 = 2/4, Recall@2 = 3/4 (4/4 if the tie went to s2).
    """
    embeddings = torch.tensor([[1.0, 0.0], [3.0, 4.0], [3.0, -4.0], [0.0, 2.0], [8.0, 6.0]])
    labels = torch.tensor([0, 1, 0, 1, -1])
    metric = RecallAtK((1, 2))
    metric.update(embeddings, labels, torch.arange(5))
    assert {k: float(v) for k, v in metric.compute().items()} == {"recall@1": 0.5, "recall@2": 0.75}


def test_a_copy_under_another_index_is_a_neighbour_under_the_same_index_is_dropped() -> None:
    a, b = [1.0, 0.0], [0.6, 0.8]
    labels = torch.tensor([0, 0, 1])
    # a and its copy retrieve each other; b's nearest are the tied copies, a (index 0) first
    copies = recall(torch.tensor([a, a, b]), labels, torch.tensor([0, 1, 2]), (1,))
    assert copies == {"recall@1": pytest.approx(2 / 3)}
    # DistributedSampler padding: index 0 twice is one sample, so a has no other label-0 sample
    padded = recall(torch.tensor([a, a, b]), labels, torch.tensor([0, 0, 2]), (1,))
    assert padded == {"recall@1": 0.0}


@pytest.mark.parametrize("seed", [0, 1])
def test_random_embeddings_match_numpy(seed: int) -> None:
    data = random_set(400, seed)
    ks = (1, 2, 4, 8, 16, 1000)  # 1000 > gallery size − 1: every other sample
    assert_same(recall(*data, ks, batch=37), reference_recall(*numpy_args(*data), ks))


def test_exact_ties_break_by_lower_global_index() -> None:
    data = tied_set(300, seed=2)
    ks = (1, 2, 3, 5, 8, 13)
    expected = reference_recall(*numpy_args(*data), ks)
    assert_same(recall(*data, ks), expected)
    # the data really hinges on the rule: ranking ties by the higher index changes the numbers
    embeddings, labels, indexes = numpy_args(*data)
    assert reference_recall(embeddings, labels, indexes.max() - indexes, ks) != expected


@pytest.mark.parametrize("queries", [1, 7, "N-1", "N", "N+5"])
def test_every_chunking_gives_the_same_numbers(
    queries: int | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings, labels, indexes = tied_set(120, seed=3)
    labels[labels < 0] = 0  # every sample is a query: blocks split the gallery's rows
    n, ks = len(labels), (1, 2, 4, 8)
    rows = {"N-1": n - 1, "N": n, "N+5": n + 5}.get(str(queries), queries)
    assert isinstance(rows, int)
    seen: list[int] = []

    def spy(similarity: torch.Tensor, reversed_positions: torch.Tensor) -> torch.Tensor:
        seen.append(len(similarity))
        return ranking_keys(similarity, reversed_positions)

    ranking_keys = metrics._ranking_keys
    monkeypatch.setattr(metrics, "_ranking_keys", spy)
    got = recall(
        embeddings, labels, indexes, ks, chunk_bytes=similarity_block_bytes(rows, n, max(ks))
    )
    block = min(rows, n)
    assert seen == [block] * (n // block) + ([n % block] if n % block else [])
    assert_same(got, reference_recall(*numpy_args(embeddings, labels, indexes), ks))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_embeddings_are_ranked_in_float32(dtype: torch.dtype) -> None:
    embeddings, labels, indexes = random_set(300, seed=4)
    half = embeddings.to(dtype)
    ks = (1, 2, 4, 8)
    got = recall(half, labels, indexes, ks)
    assert_same(got, reference_recall(*numpy_args(half, labels, indexes), ks))
    tied = tied_set(200, seed=5)  # exact in half precision too: same numbers as in float32
    assert recall(tied[0].to(dtype), *tied[1:], ks) == recall(*tied, ks)


def test_queries_without_a_positive_are_misses() -> None:
    embeddings = torch.eye(4)
    got = recall(embeddings, torch.tensor([0, 0, 1, -1]), torch.arange(4), (1, 2, 3, 50))
    # label 1 has no other sample: it never hits, however large K
    assert got == {f"recall@{k}": pytest.approx(2 / 3) for k in (1, 2, 3, 50)}


def test_several_updates_in_any_order_give_one_result() -> None:
    embeddings, labels, indexes = random_set(200, seed=6)
    ks = (1, 4)
    reverse = torch.arange(len(labels) - 1, -1, -1)
    assert recall(embeddings, labels, indexes, ks, batch=len(labels)) == recall(
        embeddings[reverse], labels[reverse], indexes[reverse], ks, batch=9
    )


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric RecallAtK was called before")
def test_paper_ks_and_reset() -> None:
    assert SOP_KS == (1, 10, 100, 1000)
    assert CUB_KS == CARS_KS == (1, 2, 4, 8)
    metric = RecallAtK(SOP_KS)
    metric.update(torch.eye(3), torch.tensor([0, 0, 1]), torch.arange(3))
    assert set(metric.compute()) == {"recall@1", "recall@10", "recall@100", "recall@1000"}
    metric.reset()
    with pytest.raises(ValueError, match="call update"):
        metric.compute()


@pytest.mark.parametrize(
    ("ks", "message"),
    [
        ((), "non-empty"),
        ((0, 1), "positive"),
        ((1.0,), "positive"),
        ((True,), "positive"),
        ((2, 1), "strictly increasing"),
        ((1, 1), "strictly increasing"),
    ],
)
def test_bad_ks_are_refused(ks: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecallAtK(ks)


def test_bad_chunk_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="chunk_bytes"):
        RecallAtK(chunk_bytes=0)


@pytest.mark.parametrize(
    ("embeddings", "labels", "indexes", "error", "message"),
    [
        (torch.zeros(4), torch.zeros(4, dtype=torch.long), torch.arange(4), ValueError, "2-D"),
        (torch.zeros(4, 2, dtype=torch.long), torch.zeros(4), torch.arange(4), TypeError, "float"),
        (torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), torch.arange(4), ValueError, "1-D"),
        (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.arange(4.0), TypeError, "int"),
        (
            torch.zeros(4, 2),
            torch.zeros(4, 1, dtype=torch.long),
            torch.arange(4),
            ValueError,
            r"\(4, 1\)",
        ),
    ],
)
def test_bad_updates_are_refused(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    indexes: torch.Tensor,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        RecallAtK().update(embeddings, labels, indexes)


def test_inconsistent_or_invalid_data_is_refused() -> None:
    def compute(*batches: tuple[torch.Tensor, list[int], list[int]]) -> None:
        metric = RecallAtK()
        for embeddings, labels, indexes in batches:
            metric.update(embeddings, torch.tensor(labels), torch.tensor(indexes))
        metric.compute()

    two = torch.eye(2)
    with pytest.raises(ValueError, match="features, earlier updates had 2"):
        compute((two, [0, 0], [0, 1]), (torch.eye(3), [0, 0, 0], [2, 3, 4]))
    with pytest.raises(ValueError, match=r"global index 1 .* labels \[0, 3\]"):
        compute((two, [0, 0], [0, 1]), (two, [3, 3], [1, 2]))
    with pytest.raises(ValueError, match=r"-1 for a distractor; got \[-2\]"):
        compute((two, [0, -2], [0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        compute((torch.tensor([[1.0, 0.0], [float("nan"), 0.0]]), [0, 0], [0, 1]))
    with pytest.raises(ValueError, match="2 samples and 0 queries"):
        compute((two, [-1, -1], [0, 1]))
    with pytest.raises(ValueError, match="1 samples"):
        compute((two, [0, 0], [5, 5]))


def test_importing_retrieval_does_not_import_lightning() -> None:
    code = (
        "import sys, assembled_lightning.retrieval\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'pytorch_lightning'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_forward_only_accumulates() -> None:
    embeddings, labels, indexes = random_set(100, seed=7)
    metric = RecallAtK((1, 2))
    for part in (slice(0, 1), slice(1, None)):  # a single sample has no neighbour: no value yet
        assert metric(embeddings[part], labels[part], indexes[part]) is None
    assert {k: float(v) for k, v in metric.compute().items()} == recall(
        embeddings, labels, indexes, (1, 2)
    )
