"""The population check: ages from DICOM headers, the intended use in the model file, the CSV column, refusals."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pydicom
import pydicom.data.data_manager as data_manager
import pytest
from pydicom.data import get_testdata_file

from cxrviewer import load_model, save_model
from cxrviewer.core.model.checkpoint import read_header
from cxrviewer.core.errors import ModelFileError
from cxrviewer.core.io.dicom import _CORNER_TAGS, _ID_TAGS
from cxrviewer.core.io.reading import load_radiograph
from cxrviewer.core.batch.inference import Predictor
from cxrviewer.core.model.model_update import weights_digest
from cxrviewer.core.model.population import (
    KERMANY, IntendedUse, age_words, check_population, model_line, parse_age_string, patient_age)
from cxrviewer.core.results.file_result import OUT_OF_SCOPE
from cxrviewer.core.training import intended_use as command
from cxrviewer.core.training.model_card import render_model_card
from tests.conftest import make_tiny_model

USE = IntendedUse.from_meta({"intended_use": KERMANY})
SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"


def rg1() -> Path:
    path = get_testdata_file("RG1_UNCR.dcm", download=False)
    assert path is not None, "pydicom-data is not installed (the project's test extra)"
    return Path(path)


def with_birth_date(src: Path, out: Path, birth: str | None, **tags) -> Path:
    """A copy of ``src`` with another Patient's Birth Date (None: removed) and other tags set."""
    ds = pydicom.dcmread(src)
    if birth is None:
        del ds.PatientBirthDate
    else:
        ds.PatientBirthDate = birth
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(out)
    return out


# -- the targets -------------------------------------------------------------------------------
def test_adult_chest_dicom_is_outside_and_a_child_copy_is_in(tmp_path):
    adult = load_radiograph(rg1())  # born 1940-03-05, studied 2004-08-26
    assert check_population(adult.meta, USE).text == "outside: age 64 y, model trained on 1-5 y"
    study = dt.date(2004, 8, 26)
    child = with_birth_date(rg1(), tmp_path / "child.dcm", study.replace(year=2001).strftime("%Y%m%d"))
    assert check_population(load_radiograph(child).meta, USE).text == "in"


def test_training_images_without_a_header_are_unknown_never_outside():
    jpegs = sorted(SAMPLES.glob("*.jpeg"))
    assert jpegs
    for path in jpegs:
        assert check_population(load_radiograph(path).meta, USE).text == "unknown"


def _test_dicoms() -> list[Path]:
    roots = [Path(data_manager.DATA_ROOT)] + [s.data_path for s in data_manager.external_data_sources().values()]
    return sorted(p for root in roots for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() not in
                  (".py", ".pyc", ".txt", ".json", ".md", ".gz", ".bz2", ".xz", ".zip"))


def test_every_pydicom_and_pydicom_data_test_dicom_passes_the_check_without_error():
    """The header fields the loader keeps (same tags, same ``str`` of each value), from every test file."""
    files, seen = _test_dicoms(), {"in": 0, "outside": 0, "unknown": 0}
    assert len(files) > 100
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - not a DICOM at all: the loader refuses it before any check
            continue
        meta = {"format": "DICOM"}
        for tag in _ID_TAGS + _CORNER_TAGS:
            try:
                value = ds.get(tag)
            except Exception:  # noqa: BLE001 - an element pydicom cannot parse is not kept by the loader either
                continue
            if value not in (None, ""):
                meta[tag] = str(value)
        verdict = check_population(meta, USE)
        assert verdict.status in seen and (verdict.status != "outside" or "model trained on 1-5 y" in verdict.why)
        seen[verdict.status] += 1
    assert seen["outside"] > 10 and seen["unknown"] > 10  # adults' headers and headerless test files


# -- ages ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, years", [
    ("062Y", 62), ("62Y", 62), ("006M", 0.5), ("6M", 0.5), ("010W", 70 / 365.25), ("003D", 3 / 365.25),
    (" 004y ", 4), ("62", None), ("", None), (None, None), ("Y", None), ("0620Y", None), ("-05Y", None),
    ("5.5Y", None), ("999Y", None), ("abc", None)])
def test_age_strings_are_read_where_dicom_allows(text, years):
    got = parse_age_string(text)
    assert got == pytest.approx(years) if years is not None else got is None


@pytest.mark.parametrize("meta, expected", [
    ({"PatientAge": "003Y"}, "in"),
    ({"PatientAge": "001Y"}, "in"),
    ({"PatientAge": "005Y"}, "in"),                      # completed years: a five-year-old is in
    ({"PatientAge": "071M"}, "in"),                      # 5 y 11 m
    ({"PatientAge": "006Y"}, "outside: age 6 y, model trained on 1-5 y"),
    ({"PatientAge": "011M"}, "outside: age 11 months, model trained on 1-5 y"),
    ({"PatientAge": "062"}, "unknown"),                   # no unit, no dates
    ({"PatientAge": "62", "PatientBirthDate": "19400305", "StudyDate": "20040826"}, "outside: age 64 y, model trained on 1-5 y"),
    ({"PatientAge": "", "PatientBirthDate": "20010826", "StudyDate": "20040826"}, "in"),
    ({"PatientBirthDate": "20050101", "StudyDate": "20040826"}, "unknown"),  # birth after the study
    ({"PatientBirthDate": "20010826", "StudyDate": "2004"}, "unknown"),     # no usable date
    ({"PatientBirthDate": "20010826", "SeriesDate": "20040826"}, "in"),     # the series date when no study date
    ({"PatientBirthDate": "20010826", "StudyDate": "garbage", "AcquisitionDate": "2004.08.26"}, "in"),
    ({"PatientBirthDate": "2001-08-26", "StudyDate": "20040826"}, "unknown"),  # not a DICOM date
    ({"PatientBirthDate": "20010231", "StudyDate": "20040826"}, "unknown"),    # no such day
    ({"PatientBirthDate": "", "StudyDate": ""}, "unknown"),
    ({}, "unknown"),
])
def test_malformed_headers_are_read_where_possible_and_otherwise_unknown(meta, expected):
    assert check_population({"format": "DICOM", **meta}, USE).text == expected


def test_a_raster_image_or_a_model_without_intended_use_is_unknown():
    assert check_population({"format": "PNG", "PatientAge": "064Y"}, USE).text == "unknown"  # no DICOM header
    assert check_population({"format": "DICOM", "PatientAge": "064Y"}, None).text == "unknown"
    assert patient_age({"format": "DICOM", "PatientAge": "064Y"}) == (64, "Patient's Age")


def test_age_words():
    assert [age_words(y) for y in (64.9, 2.0, 1.5, 0.5, 10 / 365.25)] == ["64 y", "2 y", "1 y 6 m", "6 months", "10 days"]


# -- the model file ---------------------------------------------------------------------------------
def test_intended_use_is_validated_on_load(tmp_path):
    path = save_model(make_tiny_model(intended_use=KERMANY), tmp_path / "m.safetensors")
    assert IntendedUse.from_meta(load_model(path).meta).age_years == (1, 5)
    for bad, words in [({"population": {"age_years": [5, 1]}}, "age_years"),
                       ({"population": {"age_years": [1, "5"]}}, "age_years"),
                       ({"classes": {"CAT": {"means": "a cat"}}}, "classes the model lacks"),
                       ({"classes": {"NORMAL": {"means": 3}}}, "classes"),
                       ({"views": "AP"}, "views"), ({"who": "children"}, "intended_use")]:
        with pytest.raises(ModelFileError, match=words):
            save_model(make_tiny_model(intended_use=bad), tmp_path / "bad.safetensors")


def test_the_command_records_intended_use_with_weights_byte_identical(tmp_path):
    path = save_model(make_tiny_model(threshold=0.5), tmp_path / "m.safetensors")
    before = weights_digest(path)
    assert "Intended use not recorded" in render_model_card(path, read_header(path))
    assert command.cli([str(path), "--intended-use", "kermany", "--intended-views", "AP", "PA"]) == 0
    meta = read_header(path)
    assert weights_digest(path) == before
    assert meta["intended_use"]["population"]["age_years"] == [1, 5] and meta["intended_use"]["views"] == ["AP", "PA"]
    card = path.with_suffix(".md").read_text()
    assert "## Intended use" in card and "ages 1-5 y" in card and "NORMAL means no pneumonia pattern" in card
    assert command.cli([str(path), "--intended-ages", "18", "99", "--intended-source", "adults"]) == 0
    assert read_header(path)["intended_use"]["population"] == {"age_years": [18, 99], "source": "adults"}
    assert command.cli([str(path), "--class-meaning", "CAT", "a cat", "a dog"]) == 1  # not a class: refused
    assert command.cli([str(path)]) == 1  # nothing to record
    assert command.cli([str(path), "--clear"]) == 0 and "intended_use" not in read_header(path)
    assert weights_digest(path) == before


def test_shipped_models_carry_the_kermany_intended_use():
    models = Path(__file__).resolve().parents[2] / "resources" / "models"
    for path in models.glob("*.safetensors"):
        use = IntendedUse.from_meta(read_header(path))
        assert use is not None and use.age_years == (1, 5), path.name
        assert "not a normal radiograph" in use.meaning("NORMAL")
        assert "## Intended use" in path.with_suffix(".md").read_text()
    line = model_line("m", {"intended_use": KERMANY})
    assert line.startswith("m (trained on ages 1-5 y, AP views; NORMAL = no pneumonia pattern")
    assert model_line("m", {}) == "m (intended use not recorded)"


# -- every path that runs the model ------------------------------------------------------------------
@pytest.fixture
def mixed(tmp_path):
    """An adult chest CR, the same chest as a 3-year-old, and a JPEG."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(rg1(), folder / "adult.dcm")
    with_birth_date(rg1(), folder / "child.dcm", "20010826")
    shutil.copy(sorted(SAMPLES.glob("*.jpeg"))[0], folder / "photo.jpeg")
    return folder


def test_predictor_flags_by_default_and_refuse_withholds(mixed):
    model = make_tiny_model(threshold=0.5, temperature=1.0, intended_use=KERMANY)
    files = sorted(mixed.iterdir())
    flagged = {r.path.name: r for r in Predictor(model, "cpu", checks=False).predict(files)}
    assert {k: r.population for k, r in flagged.items()} == {
        "adult.dcm": "outside: age 64 y, model trained on 1-5 y", "child.dcm": "in", "photo.jpeg": "unknown"}
    adult = flagged["adult.dcm"]
    assert adult.label == adult.predicted != OUT_OF_SCOPE and adult.outside_population
    assert adult.warnings()[0] == "outside the intended population (age 64 y, model trained on 1-5 y)"
    refused = {r.path.name: r for r in Predictor(model, "cpu", checks=False, population="refuse").predict(files)}
    assert refused["adult.dcm"].label == OUT_OF_SCOPE and refused["adult.dcm"].in_scope is False
    assert refused["adult.dcm"].scope_reason == ("outside the model's intended population "
                                                 "(age 64 y, model trained on 1-5 y)")
    assert refused["adult.dcm"].predicted == adult.predicted  # kept for audit, as for out-of-scope images
    assert refused["child.dcm"].label != OUT_OF_SCOPE and refused["photo.jpeg"].label != OUT_OF_SCOPE


def test_predict_csv_has_the_population_column_and_refuse_withholds(mixed, tmp_path, capsys):
    from cxrviewer.cli import main

    model = save_model(make_tiny_model(threshold=0.5, temperature=1.0, intended_use=KERMANY), tmp_path / "m.safetensors")
    for policy in ("flag", "refuse"):
        out = tmp_path / f"{policy}.csv"
        assert main(["predict", str(mixed), "--csv", str(out), "--model", str(model), "--population", policy]) == 0
        rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open(newline=""))}
        assert rows["adult.dcm"]["population"] == "outside: age 64 y, model trained on 1-5 y"
        assert rows["child.dcm"]["population"] == "in" and rows["photo.jpeg"]["population"] == "unknown"
        assert rows["adult.dcm"]["checks"].startswith("outside the intended population (age 64 y")
        withheld = rows["adult.dcm"]["label"] == OUT_OF_SCOPE
        assert withheld == (policy == "refuse") and rows["child.dcm"]["label"] != OUT_OF_SCOPE
    capsys.readouterr()


def test_evaluate_counts_the_population_and_calibrate_refuses_outside_it(tmp_path, capsys, monkeypatch):
    import json

    from cxrviewer.cli import main

    import numpy as np
    from dicom_factory import make_dicom

    monkeypatch.setattr("cxrviewer.core.site.calibration.MIN_PER_CLASS", 4)  # small and fast; the rule is the same
    site, rng = tmp_path / "site", np.random.default_rng(0)
    for cls in ("NORMAL", "PNEUMONIA"):
        (site / cls).mkdir(parents=True)
        for i in range(4):  # one adult per class, the rest children of three
            make_dicom(site / cls / f"{i}.dcm", rng.integers(0, 4096, (96, 80), dtype=np.uint16), Modality="CR",
                       BodyPartExamined="CHEST", StudyDate="20040826", PatientBirthDate="20010826" if i else "19400305")
    model = save_model(make_tiny_model(threshold=0.5, temperature=1.0, intended_use=KERMANY), tmp_path / "m.safetensors")
    assert main(["evaluate", str(site), "--model", str(model), "--out", str(tmp_path / "ev"),
                 "--faithfulness-images", "0", "--batch-size", "8"]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["population"] == {"in": 6, "outside": 2, "unknown": 0}
    assert {Path(x["file"]).name for x in m["outside_population"]} == {"0.dcm"} and len(m["outside_population"]) == 2
    assert "2 outside the intended population" in capsys.readouterr().out
    out = tmp_path / "cal.safetensors"
    assert main(["calibrate", str(site), "--model", str(model), "--out", str(out), "--batch-size", "8"]) == 1
    err = capsys.readouterr().err
    assert "2 of 8 images are outside the model's intended population" in err and not out.exists()
    assert main(["calibrate", str(site), "--model", str(model), "--out", str(out), "--batch-size", "8",
                 "--population", "flag", "--accept-degenerate"]) == 0  # 4 + 4 images: degenerate, accepted here
    assert read_header(out)["site_calibration"]["population"] == {"in": 6, "outside": 2, "unknown": 0}
    assert read_header(out)["intended_use"] == KERMANY  # kept: calibration does not change whom it is for


# -- the trainer's options and the exports' model line ---------------------------------------------
def test_trainer_writes_intended_use_only_when_asked_and_its_command_reproduces_it(tmp_path):
    import shlex

    from cxrviewer.core.training import TrainingError
    from cxrviewer.core.training.intended_use import intended_use_from_args
    from cxrviewer.core.training.train import command_line, get_args_parser

    parser, names = get_args_parser(), ["NORMAL", "PNEUMONIA"]
    assert intended_use_from_args(parser.parse_args(["--data", "d"]), names) is None  # never guessed
    args = parser.parse_args(["--data", "d", "--intended-use", "kermany", "--intended-views", "ap", "pa",
                              "--class-meaning", "PNEUMONIA", "an opacity like pneumonia", "a diagnosis"])
    use = intended_use_from_args(args, names)
    assert use["population"] == KERMANY["population"] and use["views"] == ["AP", "PA"]
    assert use["classes"]["PNEUMONIA"] == {"means": "an opacity like pneumonia", "does_not_mean": "a diagnosis"}
    assert use["classes"]["NORMAL"] == KERMANY["classes"]["NORMAL"]
    again = parser.parse_args(shlex.split(command_line(args))[2:])
    assert vars(again) == vars(args)  # the recorded command gives the same intended use
    only_ages = intended_use_from_args(parser.parse_args(["--data", "d", "--intended-ages", "18", "90"]), names)
    assert only_ages == {"population": {"age_years": [18, 90]}}
    cats = intended_use_from_args(parser.parse_args(["--data", "d", "--intended-use", "kermany"]), ["CAT", "DOG"])
    assert cats["classes"] == {}  # the preset's classes are kept only where the model has them
    with pytest.raises(TrainingError, match="age_years"):
        intended_use_from_args(parser.parse_args(["--data", "d", "--intended-ages", "9", "3"]), names)
    (tmp_path / "use.json").write_text('{"population": {"age_years": [0, 18], "source": "a children\'s hospital"}}')
    from_file = intended_use_from_args(parser.parse_args(["--data", "d", "--intended-use", str(tmp_path / "use.json")]), names)
    assert from_file == {"population": {"age_years": [0, 18], "source": "a children's hospital"}}
    with pytest.raises(TrainingError, match="not a preset"):
        intended_use_from_args(parser.parse_args(["--data", "d", "--intended-use", str(tmp_path / "none.json")]), names)


def test_export_caption_and_secondary_capture_carry_the_intended_use(tmp_path):
    import numpy as np

    from cxrviewer.core.results.dicom_export import export_secondary_capture
    from cxrviewer.core.results.overlay import export_caption
    from cxrviewer.core.results.file_result import FileResult

    line = model_line("cxr", {"intended_use": KERMANY})
    r = FileResult(Path("a.dcm"), probs={"NORMAL": 0.9, "PNEUMONIA": 0.1}, label="NORMAL", predicted="NORMAL",
                   in_scope=True, population="outside: age 64 y, model trained on 1-5 y")
    caption = export_caption(r, "CAM of NORMAL", line)
    assert caption.startswith("NORMAL 90.0% | OUTSIDE THE MODEL'S POPULATION (age 64 y, model trained on 1-5 y) |")
    assert "model cxr (trained on ages 1-5 y, AP views; NORMAL = no pneumonia pattern" in caption
    assert "not a normal radiograph" in caption
    inside = export_caption(FileResult(Path("b.png"), probs={"NORMAL": 0.9}, label="NORMAL", population="unknown"),
                            "CAM of NORMAL", line)
    assert "OUTSIDE" not in inside
    ds = pydicom.dcmread(export_secondary_capture(rg1(), np.zeros((8, 8, 3), np.uint8), tmp_path / "sc.dcm", model=line))
    assert ds.ImageComments.startswith(f"AI result of model {line}.") and "not a medical device" in ds.ImageComments
