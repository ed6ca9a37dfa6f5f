"""The de-identification profile as data: one allowlist table an auditor can read line by line.

It implements the PS3.15 Annex E Basic Application Level Confidentiality Profile (Table E.1-1)
*as an allowlist*: an attribute that is not named here is removed, wherever it occurs (top level
or inside any sequence item). That is the opposite of the usual blocklist tools, which leak
whatever the table's authors did not foresee (vendor private tags, new free-text attributes,
nested sequences). Together with the options we claim:

  113100 Basic Application Confidentiality Profile
  113101 Clean Pixel Data Option          (client.deid.pixels: regions + burned-in text)
  113105 Clean Descriptors Option         (descriptors kept only as controlled vocabulary)
  113107 Retain Longitudinal Temporal Information Modified Dates Option (keyed per-patient shift)
  113109 Retain Device Identity Option    (manufacturer and model only; no serial, no station)

Actions (the letters follow Table E.1-1 where one exists):

  K   keep the value (numbers and enumerated codes that cannot carry identity)
  N   keep if the value is a well-formed number (DS/IS); drop otherwise
  V   keep only words found in the controlled vocabulary (CS codes, Clean Descriptors)
  D   replace with the keyed patient pseudonym
  Z   replace with an empty value
  U   replace the UID with a keyed new UID (same input -> same output, across files and runs)
  S   shift the date by the patient's keyed offset (DA; DT keeps only its shifted date);
      times of day (TM) are made empty
  DEV keep device identity text (Retain Device Identity), reduced to safe printable characters
  SEQ keep the sequence and apply this same table to every item
  PIX regenerated from the decoded pixels by client.deid.pixels (never copied)

Everything outside the table (X) is removed, including all private tags, overlays (60xx),
curves (50xx), icon image sequences, and the whole source file meta information.
"""

from __future__ import annotations

PROFILE_NAME = "busgen-fed PS3.15 E.1-1 allowlist v1"

# CID 7050 de-identification method codes for the options this profile implements.
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113101", "Clean Pixel Data Option"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113109", "Retain Device Identity Option"),
)

TABLE: dict[str, str] = {
    # --- SOP common, identity of the object --------------------------------------------------
    "SpecificCharacterSet": "PIX",  # we write ISO_IR 100 for the text we keep
    "SOPClassUID": "K",  # what the object is; validated against the registry
    "SOPInstanceUID": "U",
    "StudyInstanceUID": "U",
    "SeriesInstanceUID": "U",
    "FrameOfReferenceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U",
    "Modality": "V",
    "ImageType": "V",
    "ConversionType": "V",
    # --- patient: pseudonym only (Table E.1-1 D/Z/X) -----------------------------------------
    "PatientName": "D",
    "PatientID": "D",
    "PatientBirthDate": "Z",
    "PatientSex": "Z",
    # --- study / series / instance: identifiers emptied, numbers kept ------------------------
    "AccessionNumber": "Z",
    "StudyID": "Z",
    "ReferringPhysicianName": "Z",
    "StudyDate": "S",
    "SeriesDate": "S",
    "AcquisitionDate": "S",
    "ContentDate": "S",
    "AcquisitionDateTime": "S",
    "StudyTime": "S",
    "SeriesTime": "S",
    "AcquisitionTime": "S",
    "ContentTime": "S",
    "SeriesNumber": "N",
    "InstanceNumber": "N",
    "AcquisitionNumber": "N",
    # --- descriptors (Clean Descriptors: controlled vocabulary only) -------------------------
    "StudyDescription": "V",
    "SeriesDescription": "V",
    "BodyPartExamined": "V",
    "Laterality": "V",
    "ImageLaterality": "V",
    "ViewPosition": "V",
    "PatientOrientation": "V",
    "PresentationIntentType": "V",
    "TransducerType": "V",
    # --- device (Retain Device Identity: vendor and model, never serial or station) ----------
    "Manufacturer": "DEV",
    "ManufacturerModelName": "DEV",
    # --- ultrasound acquisition and cine timing (numbers) ------------------------------------
    "FrameTime": "N",
    "FrameTimeVector": "N",
    "CineRate": "N",
    "RecommendedDisplayFrameRate": "N",
    "ActualFrameDuration": "N",
    "PreferredPlaybackSequencing": "K",
    "FrameIncrementPointer": "K",
    "UltrasoundColorDataPresent": "K",
    "PixelAspectRatio": "N",
    "PixelSpacing": "N",
    "WindowCenter": "N",
    "WindowWidth": "N",
    "RescaleSlope": "N",
    "RescaleIntercept": "N",
    "LossyImageCompression": "PIX",
    "LossyImageCompressionRatio": "N",
    "LossyImageCompressionMethod": "V",
    # --- SequenceOfUltrasoundRegions: geometry and calibration only --------------------------
    "SequenceOfUltrasoundRegions": "SEQ",
    "RegionSpatialFormat": "K",
    "RegionDataType": "K",
    "RegionFlags": "K",
    "RegionLocationMinX0": "K",
    "RegionLocationMinY0": "K",
    "RegionLocationMaxX1": "K",
    "RegionLocationMaxY1": "K",
    "ReferencePixelX0": "K",
    "ReferencePixelY0": "K",
    "PhysicalUnitsXDirection": "K",
    "PhysicalUnitsYDirection": "K",
    "ReferencePixelPhysicalValueX": "K",
    "ReferencePixelPhysicalValueY": "K",
    "PhysicalDeltaX": "K",
    "PhysicalDeltaY": "K",
    "TransducerFrequency": "K",
    "PulseRepetitionFrequency": "K",
    "DopplerCorrectionAngle": "K",
    "SteeringAngle": "K",
    "PixelComponentOrganization": "K",
    # --- image pixel module: regenerated from the decoded (and cleaned) pixels ---------------
    "SamplesPerPixel": "PIX",
    "PhotometricInterpretation": "PIX",
    "PlanarConfiguration": "PIX",
    "NumberOfFrames": "PIX",
    "Rows": "PIX",
    "Columns": "PIX",
    "BitsAllocated": "PIX",
    "BitsStored": "PIX",
    "HighBit": "PIX",
    "PixelRepresentation": "PIX",
    "PixelData": "PIX",
    # --- de-identification record: written by us, never copied from the source ---------------
    "PatientIdentityRemoved": "PIX",
    "DeidentificationMethod": "PIX",
    "DeidentificationMethodCodeSequence": "PIX",
    "LongitudinalTemporalInformationModified": "PIX",
    "BurnedInAnnotation": "PIX",
}

# Controlled vocabulary for "V" attributes: words that describe an ultrasound image and cannot
# identify anyone. Anything else in a descriptor (names, ids, free text) is dropped word by word.
VOCABULARY = frozenset(
    """
US OT SC ORIGINAL DERIVED PRIMARY SECONDARY INVALID DIGITIZED SYNTHETIC WSD DV DI DF DRW
BREAST BREASTS CHEST AXILLA AXILLARY THORAX
LEFT RIGHT BILATERAL L R B U LT RT
ULTRASOUND SONOGRAPHY SONO DOPPLER COLOR COLOUR POWER ELASTOGRAPHY ELASTO B-MODE BMODE
MODE CINE LOOP IMAGE IMAGES SCREENING DIAGNOSTIC FOLLOW-UP FOLLOWUP BIOPSY GUIDED GUIDANCE
LESION MASS CYST NODULE TARGETED WHOLE SURVEY BASELINE TRANSVERSE SAGITTAL RADIAL ANTIRADIAL
OBLIQUE LONGITUDINAL AXIAL CORONAL QUADRANT UPPER LOWER INNER OUTER RETROAREOLAR SUBAREOLAR
FOR PRESENTATION PROCESSING ISO_10918_1 ISO_14495_1 ISO_15444_1 ISO_10918 01 00
LINEAR CURVED PHASED SECTOR ANNULAR
""".split()
)

DATE_ACTIONS = {"S"}
