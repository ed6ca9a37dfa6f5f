"""Apply the allowlist table (client.deid.profile) to a pydicom Dataset: one recursive walker.

The walker builds a *new* dataset and copies into it only what the table allows, so nothing
the table does not name can survive: private tags, overlays, curves, icon images, unknown
sequences and future attributes are dropped by construction.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from client.deid.keys import Pseudonymizer
from client.deid.profile import TABLE, VOCABULARY

_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_DEVICE_UNSAFE = re.compile(r"[^A-Za-z0-9 .\-_/+]")
_BINARY_NUMERIC_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"}


class MalformedInput(Exception):
    """One input cannot be de-identified safely; `reason` is PHI-free, `detail` is site-private."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


@dataclass(frozen=True)
class HeaderContext:
    """What the walker needs besides the table: the keyed mappings and this patient's shift."""

    pseudonymizer: Pseudonymizer
    patient_pseudonym: str
    shift_days: int


def patient_key(ds: Dataset) -> str:
    """The original identity a pseudonym is keyed on: PatientID, else name + birth date."""
    pid = str(ds.get("PatientID", "") or "").strip()
    if pid:
        return f"id:{pid}"
    name = str(ds.get("PatientName", "") or "").strip()
    birth = str(ds.get("PatientBirthDate", "") or "").strip()
    if name:
        return f"name:{name}|{birth}"
    # Unknown patient: one pseudonym per study, the most conservative grouping available.
    return f"study:{ds.get('StudyInstanceUID', '')}"


def check_vrs(ds: Dataset, where: str = "") -> None:
    """Refuse elements whose explicit VR contradicts the data dictionary (a malformed file)."""
    for tag in ds.keys():
        if tag.is_private or tag.element == 0:
            continue
        raw = ds.get_item(tag)
        file_vr = getattr(raw, "VR", None)
        try:
            expected = dictionary_VR(tag)
        except KeyError:
            continue
        if file_vr and file_vr != "UN" and file_vr not in expected.replace(" or ", " ").split():
            raise MalformedInput(
                "wrong VR for a standard attribute",
                f"{where}{keyword_for_tag(tag) or tag}: VR {file_vr}, expected {expected}",
            )


def clean_dataset(src: Dataset, ctx: HeaderContext) -> Dataset:
    """A new dataset holding only what TABLE allows, recursing into kept sequences."""
    out = Dataset()
    for tag in src.keys():
        if tag.is_private or tag.group == 0x0002 or tag.element == 0:
            continue
        keyword = keyword_for_tag(tag)
        action = TABLE.get(keyword)
        if action is None or action == "PIX":
            continue
        try:
            elem = src[tag]
        except Exception as exc:  # pydicom raises many types for undecodable values
            raise MalformedInput("attribute value cannot be decoded", f"{keyword}: {exc}") from exc
        value = _apply(action, keyword, elem.VR, elem.value, ctx)
        if value is not None:
            out.add_new(tag, elem.VR, value)
    return out


def _apply(action: str, keyword: str, vr: str, value, ctx: HeaderContext):
    """The new value for one attribute under one action; None removes it."""
    if action == "K":
        if keyword == "SOPClassUID":
            uid = str(value)
            if UID_dictionary.get(uid, ("", "", ""))[1] != "SOP Class":
                raise MalformedInput("unknown SOP Class UID", uid)
        return value
    if action == "D":
        return ctx.patient_pseudonym
    if action == "Z":
        return ""
    if action == "U":
        if not value:
            raise MalformedInput(f"missing {keyword}")
        return ctx.pseudonymizer.uid(str(value))
    if action == "N":
        if vr in _BINARY_NUMERIC_VRS:
            return value
        values = value if _is_multi(value) else [value]
        if values and all(_NUMBER.match(str(v)) for v in values):
            return value
        return None
    if action == "V":
        return _vocabulary(value, vr)
    if action == "S":
        return _shift(vr, value, ctx.shift_days)
    if action == "DEV":
        text = _DEVICE_UNSAFE.sub("", str(value)).strip()[:64]
        return text or None
    if action == "SEQ":
        return Sequence([clean_dataset(item, ctx) for item in value])
    raise ValueError(f"profile table: unknown action {action!r} for {keyword}")


def _is_multi(value) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"


def _vocabulary(value, vr: str):
    """Keep only controlled-vocabulary words (Clean Descriptors); None if nothing is left."""
    values = list(value) if _is_multi(value) else [value]
    kept = []
    for v in values:
        words = [w for w in re.split(r"[\s^]+", str(v).upper()) if w in VOCABULARY]
        if words:
            kept.append(" ".join(words) if vr != "CS" else "_".join(words)[:16])
    if not kept:
        return None
    return kept if len(kept) > 1 else kept[0]


def _shift(vr: str, value, days: int):
    """Shift DA/DT by the patient's offset (DT keeps its date only); times of day are emptied.

    A time of day is a quasi-identifier (it matches the scanner's and the RIS's logs) and
    models do not need it, so TM is made empty rather than kept."""
    text = str(value).strip()
    if not text or vr == "TM":
        return ""
    try:
        date = dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return ""
    shifted = (date - dt.timedelta(days=days)).strftime("%Y%m%d")
    if vr == "DA" and len(text) != 8:
        return ""
    return shifted
