"""The verdict SR: what it says, in which study, about which image, and the same read back."""

from __future__ import annotations

import io

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from cxrviewer.core.pacs.dicom_sr import ModelInfo, read_verdict_sr, verdict_sr
from cxrviewer.core.results.file_result import FileResult, VerdictChecks
from tests.core.dicom_factory import make_dataset


def _source():
    return make_dataset(np.zeros((8, 8), np.uint16), StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(),
                        PatientName="Doe^Jane", PatientID="P7")


def _roundtrip(ds):
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def test_an_assessed_image_gets_its_verdict_probabilities_threshold_model_and_checks():
    source = _source()
    result = FileResult(path="x.dcm", probs={"NORMAL": 0.25, "PNEUMONIA": 0.75}, label="PNEUMONIA",
                        predicted="PNEUMONIA", in_scope=True, scope_score=0.5,
                        checks=VerdictChecks(evidence_outside=True, unstable=True, shifts={"blur": 1.5}))
    sr = _roundtrip(verdict_sr(source, result, ModelInfo("cxr-resnet18", "sha256:0123", 0.19), generate_uid()))
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33" and sr.Modality == "SR"
    assert (sr.StudyInstanceUID, sr.PatientName, sr.PatientID) == (source.StudyInstanceUID, "Doe^Jane", "P7")
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    found = read_verdict_sr(sr)
    assert found["Finding"] == "PNEUMONIA" and found["Probability of PNEUMONIA"] == 0.75
    assert found["Decision threshold"] == 0.19 and found["Algorithm Name"] == "cxr-resnet18"
    assert found["Algorithm Version"] == "sha256:0123" and found["Within the model's scope"] == "yes"
    assert found["Evidence outside the chest"] == "yes" and found["Unstable verdict"] == "yes"
    assert found["Source"] == str(source.SOPInstanceUID)
    assert any("framing" in w for w in found["Check warning"])
    ref = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert "PatientBirthDate" not in source  # the source is not changed


def test_an_out_of_scope_or_unreadable_image_is_not_assessed_and_says_why():
    out = FileResult(path="x.dcm", probs={"NORMAL": 0.9, "PNEUMONIA": 0.1}, label="OUT_OF_SCOPE", predicted="NORMAL",
                     in_scope=False, scope_reason="DICOM Modality is CT, not a projection radiograph")
    found = read_verdict_sr(verdict_sr(_source(), out, ModelInfo("m", "1"), generate_uid()))
    assert found["Finding"] == "Not assessed" and "Modality is CT" in found["Reason not assessed"]
    assert not any(k.startswith("Probability") for k in found) and found["Within the model's scope"] == "no"
    broken = FileResult(path="x.dcm", error="the pixel data is shorter than Rows x Columns")
    found = read_verdict_sr(verdict_sr(_source(), broken, ModelInfo("m", "1"), generate_uid()))
    assert found["Finding"] == "Not assessed" and "pixel data" in found["Reason not assessed"]


def test_the_report_says_whom_the_model_is_for_what_the_finding_means_and_the_patients_population():
    from cxrviewer.core.pacs.node_results import model_info
    from tests.conftest import make_tiny_model

    kermany = {"population": {"age_years": [1, 5], "source": "Kermany et al., Cell 2018"}, "views": ["AP"],
               "classes": {"NORMAL": {"means": "no pneumonia pattern of the training kind",
                                      "does_not_mean": "a normal radiograph"},
                           "PNEUMONIA": {"means": "a pediatric pneumonia pattern", "does_not_mean": "a diagnosis"}}}
    info = model_info(make_tiny_model(threshold=0.5, intended_use=kermany, version="1"))
    assert "1-5" in info.intended_for and "trained on" in info.caption_name and dict(info.meanings)["NORMAL"]
    adult = FileResult(path="x.dcm", probs={"NORMAL": 0.9, "PNEUMONIA": 0.1}, label="NORMAL", predicted="NORMAL",
                       in_scope=True, population="outside: age 64 y, model trained on 1-5 y")
    found = read_verdict_sr(_roundtrip(verdict_sr(_source(), adult, info, generate_uid())))
    assert "1-5" in found["Intended population"] and "no pneumonia pattern" in found["What the finding means"]
    assert found["Patient within the intended population"] == "outside: age 64 y, model trained on 1-5 y"
    # a model file without an intended use says so
    bare = read_verdict_sr(verdict_sr(_source(), adult, ModelInfo("m", "1"), generate_uid()))
    assert bare["Intended population"] == "not recorded in the model file" and "What the finding means" not in bare
