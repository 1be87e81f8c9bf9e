"""Errors a user can cause. The CLI prints them in one line and exits with code 2."""


class MedxaiError(Exception):
    """Base class for every user-caused error (bad path, malformed input, unknown option).

    The message is kept to one line: a library's multi-line text would otherwise hide the
    file name when the CLI prints the last line of an error raised in a worker.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


class SplitFileError(MedxaiError):
    """A COVIDx split file is missing or has a malformed line."""


class ImageReadError(MedxaiError):
    """An image is missing, corrupt or in a format medxai cannot decode."""


class DatasetError(MedxaiError):
    """A dataset root does not have the expected layout, or an output would overwrite input."""


class RegionsError(MedxaiError):
    """A file or folder of regions the user gives the audit (`--regions`) is missing or has a
    malformed row or mask."""


class OutputSpaceError(MedxaiError):
    """A folder under OUT has no room left for what a run must write there."""


class ModelOutputError(MedxaiError):
    """A model produced NaN or infinite scores, so nothing computed from them can be trusted."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's text, or its type when it has none."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
