"""Whom the model is for: its intended use (metadata) and the population check of one image.

A model file may say whom it was trained on (``meta["intended_use"]``)::

    {"population": {"age_years": [1, 5], "source": "Kermany et al. ..."},
     "views": ["AP"],
     "classes": {"NORMAL": {"means": "...", "does_not_mean": "..."}, ...}}

:func:`check_population` compares an image's age, read from its DICOM header
(Patient's Age, else Patient's Birth Date with the Study, Series or Acquisition Date),
with that range: ``in``, ``outside: <why>`` or ``unknown`` (no usable header, no recorded
range). Ages count in completed years: a range [1, 5] takes a child from the first to the
sixth birthday. Malformed values are read where DICOM allows and are otherwise unknown;
nothing here raises on a header. Qt-free, no torch.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any

KEY = "intended_use"
IN, OUTSIDE, UNKNOWN = "in", "outside", "unknown"
#: The scope reason of a verdict withheld because the image is outside the intended population.
WITHHELD = "outside the model's intended population"
#: Oldest age read as plausible; beyond it a header (or a date) is taken as wrong.
MAX_AGE = 130.0
NOT_RECORDED = "intended use not recorded"

#: The default model's intended use (Kermany et al., Cell 2018): written only when asked for.
KERMANY = {
    "population": {
        "age_years": [1, 5],
        "source": "Kermany et al., Cell 2018: pediatric patients aged one to five years, Guangzhou Women and "
                  "Children's Medical Center (one centre)",
    },
    "views": ["AP"],
    "classes": {
        "NORMAL": {"means": "no pneumonia pattern of the kind the model learned (pediatric pneumonia)",
                   "does_not_mean": "a normal radiograph: other findings (heart, tuberculosis, masses, lines, "
                                    "fractures, adult disease) were never learned and can come back NORMAL"},
        "PNEUMONIA": {"means": "a pattern like the pediatric bacterial or viral pneumonia the model learned",
                      "does_not_mean": "a diagnosis, or which pathogen; other opacities can look alike"},
    },
}


@dataclass(frozen=True)
class IntendedUse:
    """A model's intended use: age range in completed years (None: not recorded), source, views, class meanings."""

    age_years: tuple[float, float] | None = None
    source: str = ""
    views: tuple[str, ...] = ()
    classes: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> IntendedUse | None:
        """The intended use recorded in model metadata ``meta``, or None (not recorded or not valid)."""
        value = (meta or {}).get(KEY)
        if value is None or validate(value) is not None:
            return None
        pop = value.get("population") or {}
        ages = pop.get("age_years")
        return cls(tuple(float(a) for a in ages) if ages else None, str(pop.get("source") or ""),
                   tuple(value.get("views") or ()), dict(value.get("classes") or {}))

    def age_words(self) -> str:
        """``1-5 y`` (or ``unknown ages``)."""
        if self.age_years is None:
            return "unknown ages"
        return f"{_num(self.age_years[0])}-{_num(self.age_years[1])} y"

    def population_words(self) -> str:
        """One line on whom it was trained on: ages, views and source."""
        parts = [f"ages {self.age_words()}" if self.age_years else "ages not recorded"]
        if self.views:
            parts.append(f"{'/'.join(self.views)} views")
        line = ", ".join(parts)
        return f"{line} ({self.source})" if self.source else line

    def meaning(self, class_name: str) -> str:
        """What a verdict of ``class_name`` means and does not mean, in a sentence ("" when not recorded)."""
        c = self.classes.get(class_name) or {}
        parts = []
        if c.get("means"):
            parts.append(f"{class_name} means {c['means']}")
        if c.get("does_not_mean"):
            parts.append(f"not {c['does_not_mean']}")
        return "; ".join(parts) + "." if parts else ""

    def caption(self) -> str:
        """The short line export captions and DICOM results carry: "trained on ages 1-5 y, AP views; NORMAL = ..."."""
        words = [f"trained on ages {self.age_words()}" if self.age_years else "ages not recorded"]
        if self.views:
            words[0] += f", {'/'.join(self.views)} views"
        for name, c in self.classes.items():
            if c.get("means"):
                short = (c.get("does_not_mean") or "").split(":")[0].strip()
                words.append(f"{name} = {c['means']}" + (f", not {short}" if short else ""))
        return "; ".join(words)


def model_line(display_name: str, meta: dict[str, Any] | None) -> str:
    """The model as captions and DICOM results name it: its name and, in brackets, its intended use."""
    use = IntendedUse.from_meta(meta)
    return f"{display_name} ({use.caption() if use is not None else NOT_RECORDED})"


def _num(v: float) -> str:
    return f"{v:g}"


def validate(value: Any) -> str | None:
    """Why ``value`` is not a valid ``intended_use`` entry, or None."""
    if not isinstance(value, dict) or set(value) - {"population", "views", "classes"}:
        return "intended_use must be an object with population, views and classes"
    pop = value.get("population", {})
    if not isinstance(pop, dict) or set(pop) - {"age_years", "source"}:
        return "intended_use.population must be an object with age_years and source"
    ages = pop.get("age_years")
    if ages is not None and not (isinstance(ages, list) and len(ages) == 2
                                 and all(type(a) in (int, float) and 0 <= a <= MAX_AGE for a in ages)
                                 and ages[0] <= ages[1]):
        return f"intended_use.population.age_years must be [youngest, oldest] in years, 0..{MAX_AGE:g}"
    if not isinstance(pop.get("source", ""), str):
        return "intended_use.population.source must be text"
    views = value.get("views", [])
    if not (isinstance(views, list) and all(isinstance(v, str) and v for v in views)):
        return "intended_use.views must be a list of view positions (e.g. [\"AP\", \"PA\"])"
    classes = value.get("classes", {})
    if not (isinstance(classes, dict) and all(
            isinstance(c, dict) and not set(c) - {"means", "does_not_mean"} and all(isinstance(t, str) for t in c.values())
            for c in classes.values())):
        return "intended_use.classes must map class names to {means, does_not_mean} texts"
    return None


def check_classes(value: dict, class_names: list[str]) -> str | None:
    """Why the classes described in ``value`` are not the model's, or None."""
    extra = set((value or {}).get("classes", {})) - set(class_names)
    return f"intended_use describes classes the model lacks: {', '.join(sorted(extra))}" if extra else None


# -- reading an age from a DICOM header ------------------------------------------------------
_AS = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def parse_age_string(text: Any) -> float | None:
    """DICOM Age String (``nnnD``, ``nnnW``, ``nnnM``, ``nnnY``) in years; 1-3 digits accepted; else None.

    A number without its unit ("62") is ambiguous in DICOM and gives None.
    """
    m = _AS.match(str(text or ""))
    if not m:
        return None
    years = int(m.group(1)) * _UNIT_YEARS[m.group(2).upper()]
    return years if years <= MAX_AGE else None


def parse_date(text: Any) -> _dt.date | None:
    """DICOM Date (``YYYYMMDD``; the old ``YYYY.MM.DD`` too) as a date, else None."""
    digits = str(text or "").strip().replace(".", "")
    if not re.fullmatch(r"\d{8}", digits):
        return None
    try:
        return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def age_between(birth: _dt.date, when: _dt.date) -> float | None:
    """Age in years at ``when`` of someone born on ``birth``; None when born after it or implausibly old."""
    if birth > when:
        return None
    years = (when - birth).days / 365.25
    return years if years <= MAX_AGE else None


_REFERENCE_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate")


def patient_age(meta: dict[str, Any]) -> tuple[float, str] | None:
    """(age in years, where it came from) from a DICOM radiograph's ``meta``, or None.

    Patient's Age first; else Patient's Birth Date with the first valid Study, Series or
    Acquisition Date.
    """
    if meta.get("format") != "DICOM":
        return None
    age = parse_age_string(meta.get("PatientAge"))
    if age is not None:
        return age, "Patient's Age"
    birth = parse_date(meta.get("PatientBirthDate"))
    if birth is None:
        return None
    for tag in _REFERENCE_DATES:
        when = parse_date(meta.get(tag))
        if when is not None:
            age = age_between(birth, when)
            return (age, f"birth date and {_words(tag)}") if age is not None else None
    return None


def _words(tag: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", tag).lower()


def age_words(years: float) -> str:
    """``64 y``, ``5 y``, ``8 months``, ``12 days``: completed units, as a reader says them."""
    if years >= 2:
        return f"{int(years)} y"
    if years >= 1 / 12:
        months = int(years * 12 + 1e-9)
        return f"{months} month{'s' if months != 1 else ''}" if years < 1 else f"{int(years)} y {months - 12} m"
    days = int(round(years * 365.25))
    return f"{days} day{'s' if days != 1 else ''}"


@dataclass(frozen=True)
class PopulationVerdict:
    """``status``: ``in``, ``outside`` or ``unknown``; ``why``: the reason of ``outside`` (or why unknown)."""

    status: str = UNKNOWN
    why: str = ""

    @property
    def text(self) -> str:
        """The CSV cell: ``in``, ``outside: <why>`` or ``unknown``."""
        return f"{OUTSIDE}: {self.why}" if self.status == OUTSIDE else self.status

    @property
    def outside(self) -> bool:
        return self.status == OUTSIDE


def check_population(meta: dict[str, Any], use: IntendedUse | None) -> PopulationVerdict:
    """Is the image (its ``meta``) inside ``use``'s population? Never raises on a header."""
    if use is None or use.age_years is None:
        return PopulationVerdict(UNKNOWN, NOT_RECORDED if use is None else "the model records no age range")
    try:
        found = patient_age(meta or {})
    except Exception:  # noqa: BLE001 - a header the parser did not foresee is "unknown", never an error
        found = None
    if found is None:
        return PopulationVerdict(UNKNOWN, "no usable age in the file (no DICOM header, or no valid age or dates)")
    years, _source = found
    lo, hi = use.age_years
    if lo <= years < hi + 1:  # completed years within [lo, hi]
        return PopulationVerdict(IN)
    return PopulationVerdict(OUTSIDE, f"age {age_words(years)}, model trained on {use.age_words()}")
