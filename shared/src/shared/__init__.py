"""Training machinery shared by the portfolio's projects.

Modules, each named for what it holds:

- ``config``: dataclass configs turned into argparse subcommands, user errors, exit codes.
- ``device``: device choice, seeding (python, numpy, torch, DataLoader workers), RNG state capture.
- ``precision``: autocast contexts and the fp16 GradScaler.
- ``schedules``: warmup + cosine and OneCycle learning-rate schedules.
- ``training``: the ``Trainer`` (one optimizer step at a time) and ``fit`` loop.
- ``checkpoint``: atomic checkpoints, ``last``/``best``, ``--resume latest``.
- ``runs``: run folders with config.json, metrics.csv, summary.json, figures and checkpoints.
- ``plots``: live curves, labelled image/spectrogram grids, confusion matrices.
- ``download``: data root, downloads with sha256 verification, archive extraction.
- ``progress``: tqdm bars that go quiet when asked or when stdout is not a terminal.
"""

__version__ = "0.1.0"
