"""Errors a user can cause. The CLI prints them in one line and exits with code 2."""


class MedxaiError(Exception):
    """Base class for every user-caused error (bad path, malformed input, unknown option)."""


class SplitFileError(MedxaiError):
    """A COVIDx split file is missing or has a malformed line."""


class ImageReadError(MedxaiError):
    """An image is missing, corrupt or in a format medxai cannot decode."""


class DatasetError(MedxaiError):
    """A dataset root does not have the expected layout, or an output would overwrite input."""


class ModelOutputError(MedxaiError):
    """A model produced NaN or infinite scores, so nothing computed from them can be trusted."""
