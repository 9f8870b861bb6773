"""`python -m fiftyone_mslite` is the `fiftyone-mslite` command."""
from .cli import main

main()
