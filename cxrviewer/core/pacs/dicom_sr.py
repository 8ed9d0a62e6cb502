"""The verdict as a DICOM Comprehensive SR in the source's study (highdicom). Qt-free.

One report per classified radiograph: the verdict (a class, or "Not assessed" with the
reason when the image is out of the model's scope or could not be read, and then no
probabilities), each class's probability, the decision
threshold, the model's name and version, the scope result and the per-verdict check flags,
and an IMAGE item that references the source instance. The report joins the source's study
(highdicom takes the patient and study from the evidence) in a new series. Concepts without
a standard code use the private scheme ``99CXRV``; :func:`read_verdict_sr` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..results.file_result import FileResult

SCHEME = "99CXRV"
SR_SERIES_NUMBER = 9902
SR_SERIES_DESCRIPTION = "cxrviewer AI verdict (not a medical device)"
NOT_ASSESSED = "Not assessed"


@dataclass(frozen=True)
class ModelInfo:
    """What an SR says about the model: its name, version and decision threshold (None if it has none)."""

    name: str
    version: str
    threshold: float | None = None
    intended_for: str = ""  # whom the model was trained on, in words ("" when its file does not say)
    meanings: tuple[tuple[str, str], ...] = ()  # class -> what a verdict of it means and does not mean
    caption_name: str = ""  # the export captions' model line (name and intended use)


def _code(value: str, meaning: str, scheme: str = SCHEME):
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _yes_no(flag: bool | None) -> str:
    return "not run" if flag is None else ("yes" if flag else "no")


def verdict_items(source, result: FileResult, model: ModelInfo) -> list:
    """The content items of the report on ``result`` for ``source`` (a pydicom data set)."""
    import highdicom as hd

    contains = hd.sr.RelationshipTypeValues.CONTAINS
    text = lambda code, value: hd.sr.TextContentItem(code, str(value)[:1024], relationship_type=contains)  # noqa: E731
    ratio = _code("1", "no units", "UCUM")
    items = [text(_code("111001", "Algorithm Name", "DCM"), model.name),
             text(_code("111003", "Algorithm Version", "DCM"), model.version)]
    names = list(result.probs)
    assessed = result.ok and bool(result.in_scope)
    if assessed:
        finding = _code(f"CLASS{names.index(result.label)}", result.label) if result.label in names \
            else _code("UNKNOWN", str(result.label))
    else:
        finding = _code("NOTASSESSED", NOT_ASSESSED)
    items.append(hd.sr.CodeContentItem(_code("121071", "Finding", "DCM"), finding, relationship_type=contains))
    if not assessed:
        why = result.error if not result.ok else (result.scope_reason or "out of the model's scope")
        items.append(text(_code("NOTASSESSEDWHY", "Reason not assessed"), why))
    for i, name in enumerate(names if assessed else ()):  # a withheld verdict's probabilities are not reported
        items.append(hd.sr.NumContentItem(_code(f"PROB{i}", f"Probability of {name}"), float(result.probs[name]),
                                          ratio, relationship_type=contains))
    if assessed and dict(model.meanings).get(result.label):
        items.append(text(_code("MEANING", "What the finding means"), dict(model.meanings)[result.label]))
    items.append(text(_code("INTENDEDUSE", "Intended population"), model.intended_for or "not recorded in the model file"))
    if result.ok and result.population:
        items.append(text(_code("POPULATION", "Patient within the intended population"), result.population))
    if model.threshold is not None:
        items.append(hd.sr.NumContentItem(_code("THRESHOLD", "Decision threshold"), float(model.threshold), ratio,
                                          relationship_type=contains))
    if result.ok:
        items.append(text(_code("INSCOPE", "Within the model's scope"), _yes_no(result.in_scope)))
    if result.scope_score is not None:
        items.append(text(_code("SCOPESCORE", "Scope score"), f"{result.scope_score:.4f}"))
    checks = result.checks
    if assessed and checks is not None:
        items += [text(_code("EVIDOUT", "Evidence outside the chest"), _yes_no(checks.evidence_outside
                                                                              or checks.frame_flipped)),
                  text(_code("UNSTABLE", "Unstable verdict"), _yes_no(checks.unstable)),
                  text(_code("NOPOSEVID", "No positive evidence"), _yes_no(checks.no_positive_evidence))]
        for line in result.warnings():
            items.append(text(_code("WARNING", "Check warning"), line))
    items.append(hd.sr.ImageContentItem(_code("260753009", "Source", "SCT"), str(source.SOPClassUID),
                                        str(source.SOPInstanceUID), relationship_type=contains))
    return items


def verdict_sr(source, result: FileResult, model: ModelInfo, series_uid: str, instance_number: int = 1):
    """A Comprehensive SR (highdicom) with the verdict on ``result`` in the study of ``source``."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    root = hd.sr.ContainerContentItem(_code("18748-4", "Diagnostic imaging report", "LN"))
    root.ContentSequence = hd.sr.ContentSequence(verdict_items(source, result, model))
    sr = hd.sr.ComprehensiveSR(
        evidence=[_with_type2(source)], content=root, series_instance_uid=series_uid, series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=instance_number, manufacturer="cxrviewer",
        is_complete=True)
    sr.SeriesDescription = SR_SERIES_DESCRIPTION
    return sr


_TYPE2 = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
          "StudyTime", "ReferringPhysicianName")


def _with_type2(source):
    """A copy of ``source``'s header with the patient and study attributes an SR copies present (empty if unknown)."""
    import copy

    from pydicom.dataset import Dataset

    ds = Dataset()
    for elem in source:
        if elem.keyword != "PixelData":
            ds.add(copy.deepcopy(elem))
    for key in _TYPE2:
        if key not in ds:
            setattr(ds, key, None)
    return ds


def read_verdict_sr(ds) -> dict[str, object]:
    """The report's items by concept meaning: text as str, numbers as float, codes as their meaning; the source
    instance's UID under "Source"; repeated concepts (e.g. "Check warning") as lists."""
    found: dict[str, object] = {}
    for item in ds.ContentSequence:
        name = str(item.ConceptNameCodeSequence[0].CodeMeaning)
        kind = str(item.ValueType)
        if kind == "TEXT":
            value: object = str(item.TextValue)
        elif kind == "NUM":
            value = float(item.MeasuredValueSequence[0].NumericValue)
        elif kind == "CODE":
            value = str(item.ConceptCodeSequence[0].CodeMeaning)
        elif kind == "IMAGE":
            value = str(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        else:
            continue
        if name in found:
            prev = found[name]
            found[name] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            found[name] = value
    return found
