"""Label corrections: the edits file's label_after and excluded, how training uses them, label
noise, suspects and the label-correcting simulated users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from hill_core.config import Config
from hill_core.corrections import Corrections, corrections_from_edits
from hill_core.data import load_data
from hill_core.data.base import DataError
from hill_core.data.noise import flip_labels, parse_pairs
from hill_core.edits import EditsError, EditsMeta, make_edits, read_edits, write_edits
from hill_core.suspects import rank, suspect_scores
from hill_core.teacher import teacher_from_edits
from hill_core.train import init_state, train_segment
from hill_core.users import inspect_with_oracle, simulated_edits


@pytest.fixture
def snapshot():
    rng = np.random.default_rng(0)
    n = 12
    return pd.DataFrame(
        {
            "sample_id": np.arange(100, 100 + n),
            "label": np.repeat([0, 1, 2], 4),
            "class_name": np.repeat(["a", "b", "c"], 4),
            "pred": np.repeat([0, 1, 2], 4),
            "x": rng.normal(size=n),
            "y": rng.normal(size=n),
        }
    )


def corrected(snapshot, relabel=None, exclude=()):
    labels = snapshot["label"].to_numpy().copy()
    for row, label in (relabel or {}).items():
        labels[row] = label
    excluded = np.isin(np.arange(len(snapshot)), list(exclude))
    x, y = snapshot["x"], snapshot["y"]
    moved = np.zeros(len(snapshot), bool)
    return make_edits(snapshot, x, y, moved, "run", 4, labels, excluded)


def test_corrections_round_trip_and_count(tmp_path, snapshot):
    edits = corrected(snapshot, relabel={0: 2, 5: 0}, exclude=[7])
    path = write_edits(tmp_path / "g.parquet", edits, EditsMeta("h", num_classes=3), snapshot)
    back, meta = read_edits(path)
    assert meta.schema_version == 2 and meta.num_classes == 3
    fixes = corrections_from_edits(back, 3)
    assert fixes.ids.tolist() == [100, 105] and fixes.labels.tolist() == [2, 0]
    assert fixes.excluded.tolist() == [107]


@pytest.mark.parametrize("bad", [3, -1])
def test_an_unknown_class_id_is_refused_in_one_line_and_nothing_is_written(tmp_path, snapshot, bad):
    edits = corrected(snapshot, relabel={0: bad})
    with pytest.raises(EditsError, match=r"label_after of sample 100 is -?\d, not a known class"):
        write_edits(tmp_path / "g.parquet", edits, EditsMeta("h", num_classes=3), snapshot)
    assert not list(tmp_path.iterdir())


def test_a_version_1_file_still_reads_with_no_correction(tmp_path, snapshot):
    edits = corrected(snapshot).drop(columns=["label_after", "excluded"])
    table = pa.Table.from_pandas(edits, preserve_index=False)
    meta = {**EditsMeta("h").to_bytes(), b"hill.schema_version": b"1"}
    meta.pop(b"hill.num_classes")
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "old.parquet")
    back, read = read_edits(tmp_path / "old.parquet")
    assert read.schema_version == 1
    assert (back["label_after"] == back["label"]).all() and not back["excluded"].any()
    assert corrections_from_edits(back, 3).empty


def test_a_relabel_is_no_latent_request_and_an_exclusion_leaves_the_teacher(snapshot):
    edits = corrected(snapshot, relabel={0: 2}, exclude=[1])
    edits.loc[0, ["x_after", "y_after"]] = [5.0, 5.0]  # dropped into class 2's cluster
    teacher = teacher_from_edits(edits, 3)
    assert not teacher.edited  # training gets the label, not a pull


def digits(**overrides):
    base = {"base.device": "cpu", "train.epochs": 2, "hill.gate_epochs": [1]}
    cfg = Config().replace(**{**base, **overrides})
    return cfg, load_data(cfg.data, cfg.base.seed)


def test_no_corrections_train_the_dataset_itself_and_relabels_keep_the_order():
    _, data = digits()
    assert Corrections.none().apply(data.train) is data.train
    fixes = Corrections(data.train.ids[:3], np.array([9, 9, 9]), np.zeros(0, np.int64))
    seen = fixes.apply(data.train)
    assert len(seen) == len(data.train) and (seen.ids == data.train.ids).all()
    assert (
        seen.labels[:3].tolist() == [9, 9, 9] and (seen.labels[3:] == data.train.labels[3:]).all()
    )
    x, y, ids = seen.batch(torch.arange(4))
    assert y[:3].tolist() == [9, 9, 9] and torch.equal(x, data.train.batch(torch.arange(4))[0])
    dropped = Corrections(np.zeros(0, np.int64), np.zeros(0, np.int64), data.train.ids[:5])
    assert len(dropped.apply(data.train)) == len(data.train) - 5


def test_training_uses_the_corrected_labels():
    cfg, data = digits()
    plain, _ = train_segment(init_state(cfg, data), 1, 1, None)
    again, _ = train_segment(init_state(cfg, data), 1, 1, None, corrections=Corrections.none())
    a, b = plain.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    every = Corrections(np.sort(data.train.ids), np.zeros(len(data.train), np.int64),
                        np.zeros(0, np.int64))  # fmt: skip
    _, history = train_segment(init_state(cfg, data), 1, 1, None, corrections=every)
    assert history[0]["items_relabelled"] == len(data.train)
    assert history[0]["train_acc"] > 0.5  # everything is "0" now: easy to fit


def test_label_noise_is_deterministic_keeps_test_labels_and_the_truth_aside():
    _, clean = digits()
    _, noisy = digits(**{"data.label_noise": 0.3})
    _, again = digits(**{"data.label_noise": 0.3})
    flipped = noisy.train.labels != clean.train.labels
    assert flipped.sum() == round(0.3 * len(clean.train))
    assert (noisy.train.labels == again.train.labels).all()
    assert (noisy.train_eval.labels == noisy.train.labels).all()
    assert (noisy.test.labels == clean.test.labels).all() and (
        noisy.val.labels == clean.val.labels
    ).all()
    truth = noisy.truth.of(noisy.train.ids, noisy.train.labels)
    assert (truth == clean.train.labels).all() and clean.truth is None
    _, both = digits(**{"data.label_noise": 0.3, "data.label_noise_splits": "train+val"})
    assert (both.val.labels != clean.val.labels).sum() == round(0.3 * len(clean.val))
    assert (both.test.labels == clean.test.labels).all()


def test_pair_noise_flips_within_pairs_and_bad_pairs_are_one_line():
    labels = np.repeat(np.arange(4), 50)
    out = flip_labels(labels, 4, 0.2, "pairs", [[0, 1]], np.random.default_rng(0))
    changed = out != labels
    assert set(labels[changed]) <= {0, 1} and (out[changed] == 1 - labels[changed]).all()
    assert changed.sum() == 40
    with pytest.raises(DataError, match="class 7 is not in"):
        parse_pairs("1-7", 4)
    with pytest.raises(DataError, match="not a pair like 1-7"):
        parse_pairs("1/7", 4)


def test_suspects_rank_flipped_labels_first_from_out_of_fold_probabilities():
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 60)
    z = rng.normal(size=(180, 8)) + 4.0 * np.eye(8)[truth]  # three separable blobs
    given = truth.copy()
    wrong = rng.choice(180, 18, replace=False)
    given[wrong] = (truth[wrong] + 1) % 3
    score, pred = suspect_scores(z, given, 3, seed=0)
    top = rank(score)[:18]
    assert np.isin(top, wrong).mean() >= 0.9
    assert (pred[wrong] == truth[wrong]).mean() >= 0.9
    assert ((score >= 0) & (score <= 1)).all()


def suspects_snapshot(snapshot):
    snap = snapshot.copy()
    snap["suspect_score"] = np.linspace(0.0, 0.9, len(snap))  # the last rows most suspect
    snap["suspect_pred"] = (snap["label"] + 1) % 3
    return snap


class Truth:  # a LabelTruth that records which items were read
    def __init__(self, labels):
        self.labels, self.asked = labels, []

    def of(self, ids, given):
        self.asked.append(list(ids))
        return self.labels


def test_the_oracle_knows_only_what_it_inspects_within_its_budget(snapshot):
    snap = suspects_snapshot(snapshot)
    truth = (snap["label"].to_numpy() + 1) % 3  # every label is wrong
    labels = inspect_with_oracle(snap, truth, rank(snap["suspect_score"].to_numpy()), budget=2)
    changed = np.flatnonzero(labels != snap["label"].to_numpy())
    # two looks: the top suspect and its find-similar group (same old label, predicted new)
    assert 11 in changed and 0 < len(changed) <= 1 + 5
    assert (labels[changed] == truth[changed]).all()
    none = inspect_with_oracle(snap, truth, rank(snap["suspect_score"].to_numpy()), budget=0)
    assert (none == snap["label"].to_numpy()).all()


@pytest.mark.parametrize("strategy", ["oracle", "oracle-random", "oracle-drag", "auto-relabel"])
def test_label_users_record_their_channel(snapshot, strategy):
    snap = suspects_snapshot(snapshot)
    truth = Truth((snap["label"].to_numpy() + 1) % 3)
    edits = simulated_edits(strategy, snap, np.zeros((3, 3)), 0, "r", 4, truth, budget=3)
    relabelled = edits["label_after"] != edits["label"]
    if strategy == "oracle-drag":  # the latent channel: moved, labels kept
        assert not relabelled.any() and edits["moved"].sum() >= 3
    else:  # the label channel: relabelled, nothing moved
        assert relabelled.sum() >= 3 and not edits["moved"].any()
    if strategy == "auto-relabel":
        assert relabelled.sum() == 3 and not truth.asked  # no person, no truth
        rows = relabelled.to_numpy()
        assert (edits["label_after"][rows] == snap["suspect_pred"][rows]).all()


def test_an_in_process_run_shows_earlier_corrections_and_replays_bit_for_bit(tmp_path):
    from hill_core.loop import autopilot_answers, recorded_answers, run_guided

    cfg = Config().replace(**{
        "base.device": "cpu", "train.epochs": 4, "hill.gate_epochs": [2, 3],
        "data.val_fraction": 0.45, "data.test_fraction": 0.45, "data.label_noise": 0.3,
        "hill.snapshot_size": 60, "hill.suspects": 10, "hill.budget": 5,
    })  # fmt: skip
    data = load_data(cfg.data, cfg.base.seed)
    run = run_guided(cfg, data, autopilot_answers("oracle", tmp_path / "run"))
    first, _ = read_edits(tmp_path / "run/gate_0002.parquet")
    second, _ = read_edits(tmp_path / "run/gate_0003.parquet")
    fixed = first[first["label_after"] != first["label"]]
    assert len(fixed) >= 3  # five looks: suspects and their find-similar groups
    later = second.set_index("sample_id").loc[fixed["sample_id"]]
    assert (later["label_after"].to_numpy() == fixed["label_after"].to_numpy()).all()
    assert run.history[-1]["items_relabelled"] >= len(fixed)
    replay = run_guided(cfg, data, recorded_answers(tmp_path / "run"))
    a, b = run.state.model.state_dict(), replay.state.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    base = run.baseline.model.state_dict()
    assert not all(torch.equal(a[k], base[k]) for k in a)  # the corrections changed training


def test_a_run_recorded_before_label_corrections_replays_bit_for_bit(tmp_path):
    """Gate files of schema version 1, from snapshots without suspects, still replay."""
    from hill_core.loop import autopilot_answers, recorded_answers, run_guided

    overrides = {"base.device": "cpu", "train.epochs": 3, "hill.gate_epochs": [2]}
    old_cfg = Config().replace(**{**overrides, "hill.suspects": 0, "hill.snapshot_size": 80})
    data = load_data(old_cfg.data, old_cfg.base.seed)
    run = run_guided(old_cfg, data, autopilot_answers("compactness", tmp_path / "run"))
    path = tmp_path / "run/gate_0002.parquet"
    table = pq.read_table(path).drop_columns(["label_after", "excluded"])
    meta = {**table.schema.metadata, b"hill.schema_version": b"1"}
    pq.write_table(table.replace_schema_metadata(meta), path)  # as version 1 wrote it
    cfg = Config().replace(**{**overrides, "hill.snapshot_size": 80})  # today's snapshots
    replay = run_guided(cfg, data, recorded_answers(tmp_path / "run"))
    a, b = run.state.model.state_dict(), replay.state.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_only_a_bounded_pool_is_scored_and_its_top_suspects_join_the_sample(monkeypatch):
    import hill_core.snapshot as snapshot_module
    from hill_core.sampling import stratified_sample

    monkeypatch.setattr(snapshot_module, "SUSPECT_POOL", 100)  # as 5,000 of a large set
    cfg, data = digits(**{"hill.suspects": 7})
    state, _ = train_segment(init_state(cfg, data), 1, 1, None)
    snap = snapshot_module.take_snapshot(state, 50)
    sample = data.train_eval.ids[stratified_sample(data.train_eval.labels, 50, cfg.base.seed)]
    extra = snap[~snap["sample_id"].isin(sample)]
    assert len(snap) == 50 + 7 and extra["suspect_score"].notna().all()
    scored = snap["suspect_score"].notna()
    assert scored.sum() <= 100 and (snap["suspect_pred"][scored] >= 0).all()
    assert (snap["suspect_pred"][~scored] == -1).all()
    top = snap.loc[scored & ~snap["sample_id"].isin(sample), "suspect_score"].min()
    assert top >= snap.loc[scored & snap["sample_id"].isin(sample), "suspect_score"].median()
    wide = snapshot_module.take_snapshot(state, 200)  # more items than the pool: some unscored
    assert wide["suspect_score"].isna().sum() == 200 - 100
    monkeypatch.setattr(snapshot_module, "SUSPECT_POOL", 5000)
    whole = snapshot_module.take_snapshot(state, 200).set_index("sample_id")
    same = whole.loc[wide["sample_id"]]
    assert np.allclose(same[["x", "y"]], wide[["x", "y"]], atol=1e-5)
    assert (same["pred"].to_numpy() == wide["pred"].to_numpy()).all()
