"""Data layer: COVIDx split files, image decoding, MONAI transforms, the phantom dataset."""
