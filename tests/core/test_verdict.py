"""The verdict names the probability that decided it, and names on screen carry their subfolder."""

from __future__ import annotations

from pathlib import Path

from cxrviewer.core.results.columns import Batch
from cxrviewer.core.results.display_names import shown_names
from cxrviewer.core.results.file_result import FileResult
from cxrviewer.core.results.verdict import compared, decision, verdict

BATCH = Batch(("NORMAL", "PNEUMONIA"), "PNEUMONIA", 0.72, "m")


def _result(p_pneumonia: float, label: str) -> FileResult:
    return FileResult(path=Path("x.png"), label=label, predicted=label,
                      probs={"NORMAL": 1 - p_pneumonia, "PNEUMONIA": p_pneumonia})


def test_a_normal_call_under_the_threshold_shows_the_positive_probability_it_was_decided_on():
    r = _result(0.69, "NORMAL")
    assert verdict(r, BATCH) == "NORMAL: P(PNEUMONIA) 69% < 72%"  # not "NORMAL 31.0%" beside "PNEUMONIA 69.0%"
    assert verdict(_result(0.976, "PNEUMONIA"), BATCH) == "PNEUMONIA: P(PNEUMONIA) 98% \u2265 72%"
    assert decision(r, BATCH) == "P(PNEUMONIA) 69% < 72%"


def test_rounding_never_hides_or_reverses_the_comparison():
    assert compared(0.7195, 0.72) == "71.95% < 72.00%"  # "72% < 72%" would read as a contradiction
    assert compared(0.72, 0.72) == "72% \u2265 72%"
    assert compared(0.0008, 0.72) == "0.1% < 72%"  # a tiny probability is not "0%"
    assert compared(0.00019, 0.7238) == "0.02% < 72%"
    assert compared(0.9996, 0.72) == "99.96% \u2265 72%"  # nor a large one "100%"


def test_without_a_threshold_the_top_class_and_its_probability():
    r = FileResult(path=Path("x.png"), label="B", predicted="B", probs={"A": 0.2, "B": 0.7, "C": 0.1})
    assert verdict(r, Batch(("A", "B", "C"))) == "B 70.0%"
    assert verdict(FileResult(path=Path("x.png"), error="damaged"), BATCH) == ""


def test_names_on_screen_carry_the_folders_below_the_common_one():
    root = Path("/data/ward")
    paths = [root / "NORMAL" / "NORMAL2-IM-0601-0001.jpeg", root / "PNEUMONIA" / "IM-0601-0001.jpeg", root / "bad.jpg"]
    assert shown_names(paths) == ["NORMAL/NORMAL2-IM-0601-0001.jpeg", "PNEUMONIA/IM-0601-0001.jpeg", "bad.jpg"]
    assert shown_names([root / "a.png", root / "b.png"]) == ["a.png", "b.png"]
    assert shown_names([]) == []
