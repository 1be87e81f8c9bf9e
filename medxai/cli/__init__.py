"""The `medxai` command line: the composition root that parses options and calls the library.

One module per command group (data, train, explain, evaluate, clean, audit), what they share
in `common` and `inputs`, and `application`, which assembles them into `app` and `main`.
Every user error (a `MedxaiError` or a bad option) is printed as one line and exits 2.

The console script is `medxai.cli.application:main`; this package module imports nothing,
so a command module never imports the assembler. pipelines/ and data_cleaning/ are imported
inside the command functions.
"""
