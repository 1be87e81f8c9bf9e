import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from medxai.data.imageio import read_image, read_raw, to_channels, write_png
from medxai.errors import ImageReadError


def region_mean(image, rows, cols):
    h, w = image.shape
    return float(
        image[int(rows[0] * h) : int(rows[1] * h), int(cols[0] * w) : int(cols[1] * w)].mean()
    )


def test_real_chest_radiograph_reads_lungs_dark_bones_bright():
    path = get_testdata_file("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = read_image(path)
    assert image.shape == (1955, 1841) and image.dtype == np.float32
    assert image.min() == 0.0 and image.max() == 1.0
    lungs = [region_mean(image, (0.3, 0.5), c) for c in ((0.2, 0.35), (0.65, 0.8))]
    spine = region_mean(image, (0.3, 0.5), (0.47, 0.53))
    shoulder = region_mean(image, (0.08, 0.16), (0.85, 0.95))
    assert max(lungs) < spine - 0.2, "mediastinum/spine must be brighter than the lungs"
    assert max(lungs) < shoulder
    stored = ds.pixel_array.astype(float)
    assert region_mean(stored, (0.3, 0.5), (0.2, 0.35)) > region_mean(
        stored, (0.3, 0.5), (0.47, 0.53)
    ), "stored MONOCHROME1 values are the other way round: inversion was applied"


def small_dicom(tmp_path, pixels, **tags):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_window_and_photometric_inversion(tmp_path):
    ramp = np.array([[0, 1000, 1500, 2000, 4000]], dtype=np.uint16)
    windowed = read_image(small_dicom(tmp_path, ramp, WindowCenter=1500, WindowWidth=1000))
    assert windowed[0, 0] == windowed[0, 1] == 0.0, "below the window clips to black"
    assert windowed[0, 3] == windowed[0, 4] == 1.0, "above the window clips to white"
    assert 0.4 < windowed[0, 2] < 0.6
    inverted = read_image(small_dicom(tmp_path, ramp, PhotometricInterpretation="MONOCHROME1"))
    plain = read_image(small_dicom(tmp_path, ramp))
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)
    assert plain[0, 4] == 1.0 and plain[0, 0] == 0.0


def test_dicom_rescale_slope_applies_before_window(tmp_path):
    values = np.array([[0, 100, 150]], dtype=np.uint16)
    path = small_dicom(
        tmp_path, values, RescaleSlope=10, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=1001
    )
    image = read_image(path)  # HU -1000, 0, 500 against the window [-500, 500]
    assert image.tolist() == [[0.0, pytest.approx(0.5, abs=0.01), 1.0]]


def test_multiframe_and_undecodable_dicoms_are_rejected(tmp_path):
    frames = np.zeros((2, 4, 4), np.uint16)
    path = small_dicom(tmp_path, frames, NumberOfFrames=2)
    with pytest.raises(ImageReadError, match="multi-frame"):
        read_image(path)
    path = small_dicom(tmp_path, np.zeros((4, 4), np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\x00not a jpeg 2000 codestream"])
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="cannot decode DICOM pixel data.*JPEG 2000"):
        read_image(path)


def test_16bit_png_round_trip(tmp_path):
    pixels = np.array([[0, 1, 257], [4095, 40000, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    write_png(path, pixels)
    raw = read_raw(path)
    assert raw.format == "png" and raw.bit_depth == 16 and raw.pixels.dtype == np.uint16
    np.testing.assert_array_equal(raw.pixels, pixels)
    np.testing.assert_allclose(read_image(path), pixels / 65535.0, rtol=1e-6)


def test_rgb_order_and_jpeg(tmp_path):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    write_png(tmp_path / "red.png", red)
    image = read_image(tmp_path / "red.png")
    assert image.shape == (8, 8, 3) and image[..., 0].min() == 1.0 and image[..., 2].max() == 0.0
    gray = to_channels(image, 1)
    assert gray.shape == (1, 8, 8) and gray[0, 0, 0] == pytest.approx(0.299)
    assert to_channels(image, 3)[0].min() == 1.0
    cv2.imwrite(str(tmp_path / "g.jpg"), np.full((16, 16), 128, np.uint8))
    jpeg = read_raw(tmp_path / "g.jpg")
    assert jpeg.format == "jpeg" and abs(int(jpeg.pixels.mean()) - 128) <= 1


def test_missing_corrupt_and_unknown_files_name_the_path(tmp_path):
    with pytest.raises(ImageReadError, match=r"missing\.png: image not found"):
        read_image(tmp_path / "missing.png")
    write_png(tmp_path / "ok.png", np.full((64, 64), 7, np.uint8))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png: corrupt or truncated PNG"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageReadError, match=r"notes\.png: not a PNG, JPEG or DICOM"):
        read_image(tmp_path / "notes.png")
    (tmp_path / "bad.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x01\x02")
    with pytest.raises(ImageReadError, match=r"bad\.dcm"):
        read_image(tmp_path / "bad.dcm")


def test_burned_in_annotation_tag_is_read_from_dicom_only(tmp_path):
    pixels = np.zeros((8, 8), np.uint16)
    marked = small_dicom(tmp_path, pixels, BurnedInAnnotation="YES")
    assert read_raw(marked).burned_in == "YES"
    unmarked = small_dicom(tmp_path, pixels)
    assert read_raw(unmarked).burned_in == "absent"
    write_png(tmp_path / "x.png", pixels.astype(np.uint8))
    assert read_raw(tmp_path / "x.png").burned_in is None
