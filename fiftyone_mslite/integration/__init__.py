"""The FiftyOne layer: the only code below the CLI/App/demo that imports `fiftyone`.

One module per FiftyOne concept, as FiftyOne's own `fiftyone/utils/<integration>.py` pairs a Config with a Model:
`model` (MSLiteModelConfig + MSLiteModel), `annotation` (the fast `annotate`) with `writer` (its engines' sink),
`evaluation`, `views`, `datasets`, `zoo`, and `compat` (every use of FiftyOne private API, with the version it was
checked against).
"""
