"""Cases the detector's silence does not settle: DICOMs that should carry text.

A DICOM whose Burned In Annotation says YES, or whose modality usually has text burned
into the pixels, and on which nothing was found, is recorded as `needs_review` rather
than copied as "no text": a miss there is more likely than a clean film.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

# Modalities whose pixels usually carry burned-in text: ultrasound and secondary captures
# (measurements, screen captures), and projection radiography (laterality markers, the
# technologist's or the hospital's labels).
TEXT_MODALITIES = frozenset({"US", "OT", "SC", "CR", "DX", "XA", "RF", "MG"})


def review_reason(path: Path) -> str | None:
    """Why `path`, with no text found on it, still needs a human look (None: it does not)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError):
        return None  # not a DICOM: nothing in the file says it carries text
    burned = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    modality = str(ds.get("Modality", "")).strip().upper()
    if burned == "YES":
        return "Burned In Annotation is YES but no text was found"
    if modality in TEXT_MODALITIES and burned != "NO":
        return f"modality {modality} usually carries burned-in text but none was found"
    return None
