"""Fake but realistic protected health information for simulated PACS exports.

Everything here is invented from small built-in word lists and a numpy Generator: no real person,
deterministic per seed. The de-identification tests plant these values (and their own, via the
writer's overrides) and then check that none survives in headers or pixels.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

GIVEN = (
    "Maria",
    "Elena",
    "Sofia",
    "Anna",
    "Laura",
    "Julia",
    "Clara",
    "Ines",
    "Marta",
    "Nadia",
    "Olga",
    "Paula",
    "Rosa",
    "Sara",
    "Teresa",
    "Vera",
    "Yara",
    "Zoe",
    "Hana",
    "Ingrid",
    "Lucia",
    "Mei",
    "Amira",
    "Beatriz",
    "Dana",
    "Fatima",
    "Greta",
    "Irene",
    "Kira",
    "Lena",
)
FAMILY = (
    "Alvarez",
    "Becker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Horvath",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrova",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zielinski",
    "Baptiste",
    "Castillo",
    "Nakamura",
    "Oliveira",
)
STREETS = (
    "Linden",
    "Harbour",
    "Chestnut",
    "Mill",
    "Station",
    "Orchard",
    "Church",
    "Park",
    "Riverside",
    "Meadow",
)
CITIES = (
    "Northbridge",
    "Eastmoor",
    "Westfield",
    "Southport",
    "Kingsford",
    "Ashby",
    "Brookvale",
    "Castleton",
)
DOCTORS_TITLE = ("Dr", "Prof")


@dataclass(frozen=True)
class FakePatient:
    """One invented patient, with values in DICOM formats (PN, DA)."""

    family: str
    given: str
    patient_id: str
    other_id: str
    birth_date: str  # YYYYMMDD
    sex: str
    address: str
    phone: str

    @property
    def dicom_name(self) -> str:
        return f"{self.family}^{self.given}"

    @property
    def display_name(self) -> str:
        return f"{self.family.upper()}, {self.given}"


@dataclass(frozen=True)
class FakeInstitution:
    """The invented hospital a simulated site stands for."""

    name: str
    address: str
    department: str
    station: str
    physicians: tuple[str, ...]  # DICOM PN values


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, n))


def fake_name(rng: np.random.Generator) -> str:
    """A physician or operator name as a DICOM PN value."""
    return f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}^^{rng.choice(DOCTORS_TITLE)}"


def fake_patient(rng: np.random.Generator) -> FakePatient:
    """An invented female patient aged 28-82 in 2024, with MRN, address and phone."""
    birth = dt.date(1942, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 54)))
    return FakePatient(
        family=str(rng.choice(FAMILY)),
        given=str(rng.choice(GIVEN)),
        patient_id=f"{int(rng.integers(1, 10))}{_digits(rng, 7)}",
        other_id=f"NHS{_digits(rng, 9)}",
        birth_date=birth.strftime("%Y%m%d"),
        sex="F",
        address=f"{int(rng.integers(1, 200))} {rng.choice(STREETS)} Road, {rng.choice(CITIES)}",
        phone=f"+44 {_digits(rng, 4)} {_digits(rng, 6)}",
    )


def fake_institution(rng: np.random.Generator, site: str) -> FakeInstitution:
    """An invented hospital for site `site` (its name shows in the banner and the header)."""
    city = str(rng.choice(CITIES))
    return FakeInstitution(
        name=f"{city} {rng.choice(('General Hospital', 'University Hospital', 'Medical Centre'))}",
        address=f"{int(rng.integers(1, 99))} {rng.choice(STREETS)} Street, {city}",
        department="Breast Imaging",
        station=f"{site.upper()[:8]}-US{int(rng.integers(1, 9))}",
        physicians=tuple(fake_name(rng) for _ in range(4)),
    )


def fake_study_datetime(rng: np.random.Generator) -> dt.datetime:
    """A weekday working-hours exam time in 2019-2024."""
    day = dt.date(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 6 * 365)))
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(
        day, dt.time(int(rng.integers(8, 18)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
    )
