"""The one box type of the package: detected text, stamped text, known-answer squares."""

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, half-open


def overlaps(a: Box, b: Box) -> bool:
    """Whether two half-open boxes share a pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
