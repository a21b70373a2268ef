"""Training machinery shared by the portfolio's projects.

Modules, each named for what it holds:

- ``errors``: ``UserError``, ``Terminated`` and the exit statuses the CLI gives them.
- ``lifecycle``: ``run_training(task, cfg)``, the one run lifecycle every trainer goes through.
- ``config``: command options as dataclasses (``arg``, ``RunConfig``, ``apply_defaults``).
- ``cli``: those dataclasses as argparse subcommands; ``run_cli``.
- ``optim``: AdamW (fused where it can be), its weight-decay groups, and the learning-rate
  schedules (warmup + cosine, OneCycle).
- ``paths``: the data root, the runs root and the cache folders (one rule for all three); bounded
  reads of regular files.
- ``device``: device choice, precision (autocast contexts, the fp16 GradScaler), seeding (python,
  numpy, torch, DataLoader workers), RNG state capture, the CPU's facts for benchmarks, large CPU
  blocks returned to the OS.
- ``length``: how long to train on the user's data (``--epochs auto``, ``--patience``).
- ``batching``: epoch-permuted batches of rows, a pure function of (seed, step).
- ``training``: the ``Trainer`` (one optimizer step at a time), ``fit`` with its ``Callback`` hooks.
- ``signals``: SIGTERM handled like Ctrl-C (save ``last.pt``, then stop).
- ``checkpoint``: atomic, tagged, strictly loaded checkpoints; ``last``/``best``; ``--resume latest``.
- ``runs``: run folders with config.json, metrics.csv, summary.json, figures and checkpoints.
- ``atomic``: write-then-rename file writes that follow the umask; configs and summaries as strict
  JSON values (NaN as null).
- ``plots``: live curves, labelled image/spectrogram grids, confusion matrices (``plots`` extra).
- ``extras``: optional dependencies, one message naming the extra that installs them.
- ``onnx_export``: a module to ONNX (dynamo exporter, dynamic batch axis, written atomically).
- ``download``: downloads with sha256 verification, safe archive extraction.
- ``distributed``: torchrun / DistributedDataParallel or FSDP2 (gathered checkpoints), rank-0 side
  effects, global negatives.
- ``resnet``: a one-channel ResNet18 from ImageNet weights, a local file, or random.
- ``layers``: a dropout that is cheap on the CPU (same distribution as ``nn.Dropout``).
- ``demo``: what every ``P demo`` shares: the model to serve, the page's header, offline serving
  (``demo`` extra).
- ``progress``: tqdm bars in a terminal, a plain line every 30 s in a log, nothing when quiet.
- ``hub``: pretrained model folders in transformers' layout, or Hub names; their JSON read as data.
- ``lessons``: what the walkthrough notebooks share: data found or fetched, scratch, a clean stop.
- ``text``: user text made safe to encode; lists of names shortened for one-line messages.

The pytest helpers the packages' tests share are the workspace's ``testkit`` package.
"""

__version__ = "0.1.0"
