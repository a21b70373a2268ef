"""Training machinery shared by the portfolio's projects: a library each project's ``train.py``
calls, top to bottom, in the order its run happens (nothing here calls a project back but the
functions it passes to ``fit``).

Modules, each named for what it holds:

- ``cli``: a command's options as dataclasses (``arg``, ``RunConfig`` and the flags typed,
  the number rules), parsed into one (``run_cli``), and the process around it: exit statuses,
  SIGTERM handled like Ctrl-C, status lines on stderr.
- ``errors``: ``UserError``, ``Terminated`` and the exit statuses the CLI gives them.
- ``device``: where a run computes (device, torchrun's group, DDP/FSDP2 with gathered
  checkpoints, rank-0 side effects, global negatives), precision (autocast, the fp16 GradScaler),
  seeding and RNG state, the one ``--compile`` rule, the CPU's facts for benchmarks.
- ``training``: ``fit`` (one call trains a model into a run folder), the loop it runs, the
  ``Trainer`` (one optimizer step at a time), ``Cadence`` and ``AutoLength`` (how long and how
  often), ``EpochBatches`` (data order, a pure function of (seed, step)), ``WarmupCosine``.
- ``optim``: AdamW (fused where it can be), weight-decay groups, OneCycle, and the checks a saved
  optimizer or schedule state passes before a resume loads it.
- ``runs``: run folders with config.json, metrics.csv, summary.json, figures and checkpoints
  (written atomically, tagged; ``last``/``best``).
- ``checkpoint``: checkpoints read back strictly: ``--resume`` (``read_resume``), and the checks
  on what a checkpoint may make us build (``model_from_checkpoint``).
- ``files``: the data root, the runs root and the cache folders (one rule for all three);
  bounded reads of regular files; write-then-rename writes that follow the umask; strict JSON.
- ``plots``: live curves, labelled image/spectrogram grids, confusion matrices (``plots`` extra).
- ``progress``: tqdm bars in a terminal, a plain line every 30 s in a log, nothing when quiet.
- ``extras``: optional dependencies, one message naming the extra that installs them.
- ``onnx_export``: a module to ONNX (dynamo exporter, dynamic batch axis, written atomically).
- ``download``: downloads with sha256 verification, safe archive extraction.
- ``resnet``: a one-channel ResNet18 from ImageNet weights, a local file, or random.
- ``demo``: what every ``P demo`` shares: the model to serve, the page's header, offline serving
  (``demo`` extra).
- ``serve``: what every ``P serve`` shares: a FastAPI app with ``/health``, ``/metrics`` and JSON
  errors, micro-batching behind a bounded queue (503 with Retry-After), uvicorn with SIGTERM
  handled, and the load test of ``bench --serve`` (``serve`` extra).
- ``hub``: pretrained model folders in transformers' layout, or Hub names; their JSON and
  safetensors read as data.
- ``lessons``: what the walkthrough notebooks share: data found or fetched, scratch, a clean stop.
- ``text``: user text made safe to encode; lists of names shortened for one-line messages.

The pytest helpers the packages' tests share are the workspace's ``testkit`` package.
"""

__version__ = "0.1.0"
