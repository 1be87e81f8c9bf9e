"""The one box type of the package: detected text, stamped text, known-answer squares."""

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, half-open
