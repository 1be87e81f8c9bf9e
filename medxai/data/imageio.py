"""Decode PNG/JPEG (8/16-bit, gray/RGB) and DICOM radiographs.

`read_raw` keeps the stored pixels at their own bit depth (the cleaner inpaints those);
`read_image` gives what a model sees: float32 in [0, 1], bright = dense (bone), whatever
the photometric interpretation of the file; `read_decoded` gives both from one decode.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from medxai.atomic import atomic_write_bytes
from medxai.errors import ImageReadError, first_line
from medxai.paths import file_problem

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC_OFFSET = 128
MAX_PIXELS = 100_000_000  # 10,000 × 10,000: past every radiograph, far below memory trouble
GRAY_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")
# the file names of the formats decoded here (the format itself is told by its magic bytes):
# what a folder-tree dataset takes for an image
DICOM_SUFFIXES = (".dcm", ".dicom")
RADIOGRAPH_SUFFIXES = (".png", ".jpg", ".jpeg", *DICOM_SUFFIXES)


@dataclass(frozen=True)
class RawImage:
    """Pixels as stored: (H, W) or (H, W, 3) RGB, uint8 or uint16 (DICOM: stored values).

    `burned_in`: DICOM's Burned In Annotation tag (YES, NO, or "absent"); `transfer_syntax`
    (its name, e.g. "JPEG Lossless, Non-Hierarchical, First-Order Prediction") and
    `photometric` (MONOCHROME1, MONOCHROME2, RGB): DICOM's; all three None for bitmaps.
    """

    pixels: np.ndarray
    format: str
    bit_depth: int
    burned_in: str | None = None
    transfer_syntax: str | None = None
    photometric: str | None = None


def sniff_format(path: Path) -> str:
    """Tell png / jpeg / dicom apart by their magic bytes, not by the file name."""
    with open(path, "rb") as f:
        head = f.read(DICOM_MAGIC_OFFSET + 4)
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head[DICOM_MAGIC_OFFSET:] == b"DICM" or path.suffix.lower() in DICOM_SUFFIXES:
        return "dicom"
    raise ImageReadError(f"{path}: not a PNG, JPEG or DICOM file")


def _check_file(path: Path) -> None:
    problem = file_problem(path)
    if problem:
        raise ImageReadError(f"{path}: {problem}")


def _decoding(read):
    """Any failure inside a decoder becomes one ImageReadError line naming the file."""

    @functools.wraps(read)
    def guarded(path: str | Path):
        path = Path(path)
        _check_file(path)
        try:
            return read(path)
        except ImageReadError:
            raise
        except MemoryError as err:
            raise ImageReadError(f"{path}: too large to decode in memory") from err
        except Exception as err:  # pydicom and OpenCV raise many types on damaged files
            raise ImageReadError(f"{path}: cannot decode ({first_line(err)})") from err

    return guarded


@_decoding
def read_raw(path: Path) -> RawImage:
    """Read the stored pixels without changing their values or depth."""
    fmt = sniff_format(path)
    if fmt == "dicom":
        return _dicom_raw(_read_dicom_dataset(path), path)
    return RawImage(*_read_bitmap(path, fmt))


@_decoding
def read_image(path: Path) -> np.ndarray:
    """Read an image as float32 in [0, 1]: (H, W) for grayscale, (H, W, 3) for RGB."""
    fmt = sniff_format(path)
    if fmt == "dicom":
        return _dicom_to_unit(_read_dicom_dataset(path), path)
    pixels, _, depth = _read_bitmap(path, fmt)
    return _bitmap_to_unit(pixels, depth)


@_decoding
def read_decoded(path: Path) -> tuple[RawImage, np.ndarray]:
    """`read_raw` and `read_image` of one file, decoded once (pydicom keeps its pixels)."""
    fmt = sniff_format(path)
    if fmt == "dicom":
        ds = _read_dicom_dataset(path)
        return _dicom_raw(ds, path), _dicom_to_unit(ds, path)
    raw = RawImage(*_read_bitmap(path, fmt))
    return raw, _bitmap_to_unit(raw.pixels, raw.bit_depth)


def _bitmap_to_unit(pixels: np.ndarray, depth: int) -> np.ndarray:
    return (pixels.astype(np.float32) / float(2**depth - 1)).clip(0.0, 1.0)


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(f"{path}: image declares {width}×{height} pixels")
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: image declares {width}×{height} pixels, over the limit of "
            f"{MAX_PIXELS:,} pixels"
        )


def _bitmap_size(path: Path, fmt: str) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{path}: image is over the limit of {MAX_PIXELS:,} pixels") from err
    except (OSError, SyntaxError, ValueError) as err:  # PIL's ways of saying "not decodable"
        raise ImageReadError(f"{path}: corrupt or truncated {fmt.upper()} file") from err


def _read_bitmap(path: Path, fmt: str) -> tuple[np.ndarray, str, int]:
    _check_pixels(path, *_bitmap_size(path, fmt))
    data = np.fromfile(path, dtype=np.uint8)
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if pixels is None:
        raise ImageReadError(f"{path}: corrupt or truncated {fmt.upper()} file")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: unsupported pixel type {pixels.dtype}")
    if pixels.ndim == 3:
        pixels = pixels[..., :3]  # drop alpha
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if pixels.shape[2] == 3 else pixels[..., 0]
    return np.ascontiguousarray(pixels), fmt, 8 * pixels.dtype.itemsize


def _read_dicom_dataset(path: Path) -> pydicom.Dataset:
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as err:
        raise ImageReadError(f"{path}: unreadable DICOM ({err})") from err
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data")
    frames = _dicom_int(ds, "NumberOfFrames", path, default=1)
    if frames > 1:
        raise ImageReadError(f"{path}: multi-frame DICOM ({frames} frames) is not a radiograph")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric not in (*GRAY_PHOTOMETRIC, "RGB"):
        raise ImageReadError(f"{path}: unsupported photometric interpretation {photometric}")
    _check_pixels(path, _dicom_int(ds, "Columns", path), _dicom_int(ds, "Rows", path))
    return ds


def _dicom_int(ds: pydicom.Dataset, keyword: str, path: Path, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError) as err:
        raise ImageReadError(f"{path}: malformed DICOM {keyword} {value!r}") from err


def _dicom_raw(ds: pydicom.Dataset, path: Path) -> RawImage:
    pixels = _dicom_pixels(ds, path)
    depth = int(ds.get("BitsStored", pixels.dtype.itemsize * 8))
    burned_in = str(ds.get("BurnedInAnnotation", "")).upper() or "absent"
    syntax = ds.file_meta.get("TransferSyntaxUID")
    name = str(getattr(syntax, "name", syntax) or "absent")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    return RawImage(pixels, "dicom", depth, burned_in, name, photometric)


def _dicom_pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as err:  # pydicom raises several types for missing codecs/bad data
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(syntax, "name", str(syntax))
        raise ImageReadError(
            f"{path}: cannot decode DICOM pixel data (transfer syntax {name}): {first_line(err)}"
        ) from err


def _dicom_to_unit(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """Modality LUT → VOI LUT/window → MONOCHROME1 inversion → [0, 1]."""
    pixels = _dicom_pixels(ds, path)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric not in GRAY_PHOTOMETRIC:
        if pixels.ndim == 3 and pixels.shape[-1] == 3:
            depth = _dicom_int(ds, "BitsStored", path, default=8)
            return (pixels.astype(np.float32) / float(2**depth - 1)).clip(0, 1)
        raise ImageReadError(f"{path}: unsupported photometric interpretation {photometric}")
    values = apply_voi_lut(apply_modality_lut(pixels, ds), ds).astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    unit = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    if photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return unit.astype(np.float32)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) → (channels, H, W); RGB to gray by ITU-R BT.601 luma."""
    if image.ndim == 2:
        gray = image
    elif channels == 3:
        return np.ascontiguousarray(image.transpose(2, 0, 1))
    else:
        gray = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.repeat(gray[None].astype(np.float32), channels, axis=0)


def write_png(path: str | Path, pixels: np.ndarray) -> None:
    """Write uint8/uint16 gray or RGB pixels as PNG, atomically (temp name, then rename)."""
    path = Path(path)
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ImageReadError(f"{path}: could not encode PNG")
    atomic_write_bytes(path, encoded.tobytes())
