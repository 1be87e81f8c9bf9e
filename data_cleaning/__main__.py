"""`python -m data_cleaning --root SRC --out DST ...` is `medxai clean --root SRC --out DST ...`."""

import sys

from medxai.cli import main

main(["clean", *sys.argv[1:]])
