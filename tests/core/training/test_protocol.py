import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrviewer.core.errors import CxrError
from cxrviewer.core.model.checkpoint import load_model, save_model
from cxrviewer.core.model.classifier import CamClassifier
from cxrviewer.core.training import protocol
from cxrviewer.core.training.crossbatch import hold_out_normal_batch, in_batch
from cxrviewer.core.training.data import DEFAULT_PATIENT_PATTERN, Sample


def test_threshold_at_sensitivity_keeps_that_share_of_positives():
    p = np.linspace(0.1, 1.0, 10)
    assert protocol.threshold_at_sensitivity(p, 0.95) == pytest.approx(0.1)
    assert protocol.threshold_at_sensitivity(p, 0.8) == pytest.approx(0.2)
    assert protocol.threshold_at_sensitivity(p[::-1], 0.7) == pytest.approx(0.3)
    assert (p >= protocol.threshold_at_sensitivity(p, 0.75)).mean() >= 0.75


def test_view_metrics_use_the_clean_t95_for_spec95_and_their_own_for_spec_at_sens95():
    y = np.r_[np.zeros(4), np.ones(20)]
    p = np.r_[[0.1, 0.2, 0.6, 0.9], np.linspace(0.5, 1.0, 20)]
    m = protocol.view_metrics(y, p, threshold=0.7, t95=0.51)
    assert m["spec95"] == pytest.approx(0.5)                 # 0.1 and 0.2 below 0.51
    assert m["sens95"] == pytest.approx(19 / 20)             # 0.5 is below
    assert m["bal95"] == pytest.approx((0.5 + 0.95) / 2)
    assert m["spec_at_sens95"] == pytest.approx(0.5)         # its own t95 is 0.5: 0.1 and 0.2 below
    assert m["specificity"] == pytest.approx(0.75) and m["n"] == 24
    assert 0 < m["nll"] < 2 and 0 <= m["ece"] <= 1


def test_protocol_threshold_weighs_groups_equally_and_picks_the_middle():
    y = np.array([0, 0, 1, 1])
    clean = (y, np.array([0.1, 0.2, 0.8, 0.9]))
    shifted = (y, np.array([0.3, 0.6, 0.8, 0.9]))    # NORMAL scores pushed up
    t = protocol.protocol_threshold([[clean], [shifted]])
    assert 0.6 < t <= 0.8                              # the only cut that is perfect for both groups
    assert protocol.protocol_threshold([[clean]]) == pytest.approx(0.5)  # middle of the clean plateau (0.2, 0.8)


def test_summarize_finds_the_worst_family_and_the_score_combines_three_parts():
    def view(fam, level, bal):
        return {"family": fam, "level": level, "bal95": bal, "spec95": bal, "sens95": bal, "auroc": 0.9,
                "spec_at_sens95": 0.8, "sensitivity": 0.9, "specificity": bal, "nll": 0.3, "ece": 0.05}
    views = [view("blur", 1, 0.9), view("blur", 2, 0.7), view("crop", 1, 0.95), view("crop", 2, 0.85)]
    s = protocol.summarize(views)
    assert s["worst_family"] == "blur" and s["W"] == pytest.approx(0.8) and s["M"] == pytest.approx(0.85)
    assert s["specificity"]["worst"] == pytest.approx(0.7) and s["families"]["blur"]["worst_specificity"] == pytest.approx(0.7)
    xb = [{"held_out": {"spec95": 0.6}}, {"held_out": {"spec95": 0.8}}]
    sc = protocol.study_score({"summary": s}, xb)
    assert sc["XB"] == pytest.approx(0.7) and sc["score"] == pytest.approx((0.7 + 0.85 + 0.8) / 3)
    assert protocol.study_score({"summary": s}, [])["score"] is None


def test_hold_out_normal_batch_removes_one_batch_everywhere_and_keeps_the_other_class_split():
    names = ["NORMAL", "PNEUMONIA"]
    s = lambda name, label: Sample(Path(name), label)  # noqa: E731
    train = [s("IM-0001-0001.jpeg", 0), s("NORMAL2-IM-0002-0001.jpeg", 0), s("person1_virus_1.jpeg", 1)]
    val = [s("IM-0003-0001.jpeg", 0), s("NORMAL2-IM-0004-0001.jpeg", 0), s("person2_virus_2.jpeg", 1)]
    tr, va, held = hold_out_normal_batch(train, val, "IM", names)
    assert [x.path.name for x in tr] == ["NORMAL2-IM-0002-0001.jpeg", "person1_virus_1.jpeg"]
    assert [x.path.name for x in va] == ["NORMAL2-IM-0004-0001.jpeg", "person2_virus_2.jpeg"]
    assert [x.path.name for x in held] == ["IM-0001-0001.jpeg", "IM-0003-0001.jpeg", "person2_virus_2.jpeg"]
    assert not in_batch(s("NORMAL2-IM-0002-0001.jpeg", 0), "IM", 0) and in_batch(train[1], "NORMAL2", 0)
    with pytest.raises(ValueError, match="unknown NORMAL batch"):
        hold_out_normal_batch(train, val, "XX", names)


@pytest.fixture
def tiny_data(tmp_path):
    """A Kermany-named folder: 10 + 10 NORMAL images of the two batches, 20 PNEUMONIA, 32 px, all distinct."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data" / "train"
    names = [("NORMAL", f"IM-{i:04d}-0001.png") for i in range(10)] + \
            [("NORMAL", f"NORMAL2-IM-{i:04d}-0001.png") for i in range(10)] + \
            [("PNEUMONIA", f"person{i}_bacteria_{i}.png") for i in range(20)]
    for cls, name in names:
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(root / cls / name)
    return root.parent


def _model_file(path, holdout=None, seed=0):
    torch.manual_seed(seed)
    meta = {"format_version": 1, "arch": "resnet18", "class_names": ["NORMAL", "PNEUMONIA"], "input_size": [32, 32],
            "input_channels": 1, "mean": [0.5], "std": [0.25], "positive_class": "PNEUMONIA", "threshold": 0.5,
            "training": {"command": "python train_model.py ...", "seconds": 60,
                         "split": {"rule": "patient", "patient_pattern": DEFAULT_PATIENT_PATTERN, "val_fraction": 0.3, "seed": 0},
                         "args": {"val_fraction": 0.3, "seed": 0, "holdout_normal_batch": holdout}}}
    if seed:
        meta["threshold"] = 0.4
    return save_model(CamClassifier("resnet18", 2, 1, meta=meta), path, half=True)


def test_scorer_writes_json_and_a_table_row_for_a_recipe_and_continues_from_its_cache(tiny_data, tmp_path, monkeypatch):
    full = _model_file(tmp_path / "m.safetensors")
    xa, xb = _model_file(tmp_path / "xa.safetensors", "IM"), _model_file(tmp_path / "xb.safetensors", "NORMAL2")
    args = protocol.get_args_parser().parse_args(
        ["--model", str(full), "--cross-batch", str(xa), str(xb), "--data", str(tiny_data), "--out", str(tmp_path / "out"),
         "--name", "tiny", "--families", "blur", "crop", "--batch-size", "8"])
    result = protocol.main(args)
    saved = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert saved["score"] == result["score"] and saved["score"]["score"] is None  # 2 of 17 families: no Score
    assert saved["score"]["XB"] is not None and saved["score"]["M"] is not None
    f = saved["full"]
    assert [v["family"] for v in f["views"]] == ["crop"] * 5 + ["blur"] * 5  # framing first
    assert f["complete"] is False and f["families_scored"] == 2
    assert f["clean"]["n"] == 12 and {v["n"] for v in f["views"]} == {12}  # 6 NORMAL and 6 PNEUMONIA patients; balanced
    assert f["constraints"]["cost_vs_resnet18_224"] < 0.1 and f["constraints"]["train_minutes"] == 1.0
    held = {c["held_out"]["batch"]: c["held_out"] for c in saved["cross_batch"]}
    assert held["IM"]["normal_images"] == 10 and held["NORMAL2"]["normal_images"] == 10
    assert held["IM"]["n"] == 10 + 6
    assert saved["score"]["XB"] == pytest.approx((held["IM"]["spec95"] + held["NORMAL2"]["spec95"]) / 2)
    md = (tmp_path / "out" / "tiny.md").read_text()
    assert protocol.ROW_HEADER.splitlines()[0] in md and "| tiny (partial: 2 of 17 families) |" in md
    assert "| blur |" in md and "IM NORMAL held out" in md
    with pytest.raises(CxrError, match="not trained with --holdout"):
        protocol.main(protocol.get_args_parser().parse_args(
            ["--cross-batch", str(full), "--data", str(tiny_data), "--out", str(tmp_path / "o2")]))
    # A rerun takes every probability from the cache (nothing is computed again) and writes the same result.
    monkeypatch.setattr(protocol, "positive_probs", lambda *a, **k: pytest.fail("not cached"))
    assert protocol.main(args)["score"] == result["score"]


def test_command_line_reproduces_the_arguments(tmp_path):
    argv = ["--model", "m.safetensors", "--cross-batch", "a b.safetensors", "x.safetensors", "--data", "../data",
            "--out", "scores", "--name", "row", "--write-threshold", "new.safetensors"]
    line = protocol.command_line(protocol.get_args_parser().parse_args(argv))
    assert line == ("python -m cxrviewer.core.training.protocol --model m.safetensors --cross-batch 'a b.safetensors' "
                    "x.safetensors --data ../data --out scores --name row --write-threshold new.safetensors")
    import shlex
    assert protocol.get_args_parser().parse_args(shlex.split(line)[3:]) == protocol.get_args_parser().parse_args(argv)


def test_trainer_holds_out_a_normal_batch_from_train_and_val(tiny_data):
    from cxrviewer.core.training.data import find_samples
    from cxrviewer.core.training.train import TrainingError, get_args_parser

    args = get_args_parser().parse_args(["--data", str(tiny_data), "--val-fraction", "0.3", "--holdout-normal-batch", "NORMAL2"])
    _, samples, split = find_samples(args)
    assert not any(s.path.name.startswith("NORMAL2-") for s in samples["train"] + samples["val"])
    assert {s.label for s in samples["train"]} == {0, 1} and {s.label for s in samples["val"]} == {0, 1}
    normals = [s.path.name for s in samples["held_out"] if s.label == 0]
    assert len(normals) == 10 and all(n.startswith("NORMAL2-IM-") for n in normals)
    assert split["holdout_normal_batch"] == "NORMAL2" and split["held_out_normal_images"] == 10
    plain = find_samples(get_args_parser().parse_args(["--data", str(tiny_data), "--val-fraction", "0.3"]))[1]
    pneumonia_val = [s.path for s in plain["val"] if s.label == 1]
    assert [s.path for s in samples["val"] if s.label == 1] == pneumonia_val  # the PNEUMONIA split is unchanged
    for p in (tiny_data / "train" / "NORMAL").glob("NORMAL2-*"):
        p.unlink()
    with pytest.raises(TrainingError, match="no NORMAL image of batch NORMAL2"):
        find_samples(args)


def test_protocol_threshold_is_written_into_a_copy_with_its_card(tmp_path):
    from cxrviewer.core.model.checkpoint import load_model
    from cxrviewer.core.training.operating_point import write_protocol_threshold
    from cxrviewer.core.training.shift import SUITE

    src = _model_file(tmp_path / "m.safetensors")
    views = [{"family": fam, "level": lvl, "at_protocol_threshold": {"sensitivity": 0.9, "specificity": 0.8 - 0.02 * lvl}}
             for fam in SUITE for lvl in range(1, 6)]
    full = {"complete": True, "views": views, "protocol_threshold": 0.37,
            "clean_at_protocol_threshold": {"sensitivity": 0.97, "specificity": 0.93}}
    cross = [{"held_out": {"batch": "IM", "auroc": 0.95, "spec95": 0.7, "specificity": 0.8}}]
    score = {"score": None, "XB": None, "M": 0.9, "W": 0.8}
    out = write_protocol_threshold(src, tmp_path / "shipped.safetensors", full, cross, score)
    new, old = load_model(out), load_model(src)
    assert new.threshold == pytest.approx(0.37) and old.threshold == 0.5
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), old.state_dict().values()))
    assert new.meta["protocol"]["families"]["blur"]["worst_specificity"] == pytest.approx(0.7)
    card = out.with_suffix(".md").read_text()
    assert "by the `protocol` rule" in card and "| crop | 0.900 | 0.740 | 0.700 |" in card and "without the IM NORMAL" in card
    with pytest.raises(CxrError, match="exists"):
        write_protocol_threshold(src, out, full, cross, score)
    # with the clean validation probabilities, the copy's validation metrics are recomputed at the new threshold
    labels, probs = np.array([0, 0, 0, 1, 1, 1]), np.array([0.1, 0.3, 0.4, 0.35, 0.6, 0.9])
    out2 = write_protocol_threshold(src, tmp_path / "rethresholded.safetensors", full, cross, score, clean=(labels, probs))
    m = load_model(out2).meta["metrics"]
    assert m["validation"]["threshold"] == pytest.approx(0.37)
    assert m["validation"]["sensitivity"] == pytest.approx(2 / 3) and m["validation"]["specificity"] == pytest.approx(2 / 3)
    assert "validation_shifted" not in m
    assert "The `validation` row is at the shipped threshold" in out2.with_suffix(".md").read_text()
    with pytest.raises(CxrError, match="whole suite"):
        write_protocol_threshold(src, tmp_path / "x.safetensors", {**full, "complete": False}, cross, score)
    # Rescoring a protocol copy (e.g. with cross-batch models added): one trainer row, one validation row at the
    # new threshold, and the note says it was rescored instead of naming the copy as the weights' origin.
    cross2 = cross + [{"held_out": {"batch": "NORMAL2", "auroc": 0.9, "spec95": 0.6, "specificity": 0.7},
                       "command": "train_model.py --epochs 20 --holdout-normal-batch NORMAL2"}]
    scoring = "python -m cxrviewer.core.training.protocol --model m.safetensors --write-threshold rescored.safetensors"
    out3 = write_protocol_threshold(out2, tmp_path / "rescored.safetensors", full, cross2, score, clean=(labels, probs),
                                    command=scoring)
    meta3 = load_model(out3).meta
    # the card says how to reproduce the section: the scoring command and the cross-batch model's training command
    card3 = out3.with_suffix(".md").read_text()
    assert meta3["protocol"]["command"] == scoring and f"```\n{scoring}\n```" in card3
    assert "```\npython train_model.py --epochs 20 --holdout-normal-batch NORMAL2\n```" in card3
    assert "command" not in meta3["protocol"]["cross_batch"]["IM"] and "command" not in load_model(out2).meta["protocol"]
    assert sorted(meta3["metrics"]) == sorted(m) and "validation, trainer's threshold 0.370" not in meta3["metrics"]
    assert meta3["metrics"]["validation"]["threshold"] == pytest.approx(0.37)
    note = meta3["training"]["calibration"]
    assert "rescored" in note and "rethresholded.safetensors" in note and note.count("by the protocol rule") == 1
    out4 = write_protocol_threshold(out3, tmp_path / "again.safetensors", full, cross2, score, clean=(labels, probs))
    note4 = load_model(out4).meta["training"]["calibration"]  # a second rescoring replaces the first one's note
    assert note4.count("protocol summary rescored") == 1 and "from rescored.safetensors" in note4 and note4.startswith(note.split("; protocol")[0])
    assert set(meta3["protocol"]["cross_batch"]) == {"IM", "NORMAL2"} and "without the NORMAL2 NORMAL" in out3.with_suffix(".md").read_text()


def test_study_row_trains_three_runs_scores_them_and_continues(tiny_data, tmp_path, monkeypatch, no_report_plots):
    from cxrviewer.core.training import study, train

    # No heat-map audit or scope fit in the full run either: the score reads neither (as for the cross-batch runs).
    argv = ["--name", "r", "--runs", str(tmp_path / "runs"), "--data", str(tiny_data), "--families", "crop", "--",
            "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--val-fraction", "0.3", "--threshold-rule", "youden",
            "--audit-images", "0", "--no-scope"]
    result = study.main(study.get_args_parser().parse_args(argv))
    for suffix, batch in study.RUNS:
        meta = load_model(tmp_path / "runs" / f"r{suffix}" / "model.safetensors").meta
        assert meta["training"]["args"]["holdout_normal_batch"] == batch and meta["training"]["args"]["image_size"] == 32
    assert {c["held_out"]["batch"] for c in result["cross_batch"]} == {"IM", "NORMAL2"}
    assert result["score"]["XB"] is not None and (tmp_path / "runs" / "scores" / "r.md").is_file()
    # Rerun: the models are kept and the scores come from the cache.
    monkeypatch.setattr(train, "main", lambda args: pytest.fail("trained again"))
    monkeypatch.setattr(protocol, "positive_probs", lambda *a, **k: pytest.fail("scored again"))
    assert study.main(study.get_args_parser().parse_args(argv))["score"] == result["score"]
    with pytest.raises(CxrError, match="may not set --out"):
        study.recipe_args(["--", "--epochs", "1", "--out", "x.safetensors"])
    # The ensemble of a row with itself: the same probabilities, all read from that row's cache.
    ens = study.main(study.get_args_parser().parse_args(
        ["--name", "rr", "--runs", str(tmp_path / "runs"), "--data", str(tiny_data), "--families", "crop",
         "--members", "r", "r"]))
    assert ens["score"] == result["score"] and ens["full"]["constraints"]["members"] == 2
    with pytest.raises(CxrError, match="not trained yet"):
        study.main(study.get_args_parser().parse_args(
            ["--name", "rq", "--runs", str(tmp_path / "runs"), "--data", str(tiny_data), "--members", "r", "q"]))


def test_study_puts_each_runs_suffix_into_the_recipe(tmp_path, monkeypatch):
    from cxrviewer.core.training import study, train

    seen = []

    def fake_main(args):
        seen.append([str(t) for t in args.teacher])
        # Only the cross-batch runs skip the audit and the scope fit (the score reads neither).
        assert (args.audit_images == 0 and not args.scope) == (args.holdout_normal_batch is not None)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(b"")

    monkeypatch.setattr(train, "main", fake_main)
    args = study.get_args_parser().parse_args(["--name", "s", "--runs", str(tmp_path), "--data", str(tmp_path), "--",
                                               "--teacher", "/r/t{run}/model.safetensors"])
    study.train_runs(args)
    assert seen == [["/r/t/model.safetensors"], ["/r/t-xIM/model.safetensors"], ["/r/t-xN2/model.safetensors"]]


def test_an_ensemble_is_scored_as_the_mean_of_its_members_and_cross_batch_files_group_by_batch(tiny_data, tmp_path):
    a, b = _model_file(tmp_path / "a.safetensors"), _model_file(tmp_path / "b.safetensors", seed=1)
    members = protocol.Members([a, b])
    val = members.split(tiny_data)[0]
    images = protocol.load_images(val, (32, 32))
    expected = (protocol.positive_probs(load_model(a), images) + protocol.positive_probs(load_model(b), images)) / 2
    assert np.allclose(members.probs("clean", images), expected)
    assert members.threshold == pytest.approx(0.45)  # the median of 0.5 and 0.4
    assert members.constraints()["members"] == 2 and members.constraints()["train_minutes"] == 2.0
    xs = [_model_file(tmp_path / f"x{i}.safetensors", batch, seed=i % 2)
          for i, batch in enumerate(["IM", "IM", "NORMAL2", "NORMAL2"])]
    assert protocol.cross_batch_groups(xs) == [xs[:2], xs[2:]]
    result = protocol.main(protocol.get_args_parser().parse_args(
        ["--model", str(a), str(b), "--cross-batch", *map(str, xs), "--data", str(tiny_data),
         "--out", str(tmp_path / "out"), "--name", "ens", "--families", "crop"]))
    assert result["full"]["clean"]["auroc"] == pytest.approx(protocol.view_metrics(
        np.array([int(s.label == 1) for s in val]), expected, 0.45, 0.5)["auroc"])
    assert len(result["cross_batch"]) == 2 and " + " in result["full"]["model"]
    other_split = save_model(CamClassifier("resnet18", 2, 1, meta={**load_model(b).meta, "training": {
        "args": {"val_fraction": 0.5, "seed": 3}}}), tmp_path / "c.safetensors")
    with pytest.raises(CxrError, match="another validation split"):
        protocol.Members([a, other_split]).split(tiny_data)
