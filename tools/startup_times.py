"""Startup wall time of the inference commands in two checkouts, side by side, interleaved.

    python3 tools/startup_times.py --before /path/to/old/checkout --after . --data ../shared/data

Each checkout runs with its own ``.venv`` (``uv sync --all-packages`` there first). Small
checkpoints are trained once with the ``--after`` checkout (the format did not change), then
every command runs ``--rounds`` times per checkout, alternating, and the medians are printed as
one JSON object: ``--help`` of three projects, and a one-file ``predict``/``generate``. Bytecode
caching is on (``PYTHONDONTWRITEBYTECODE`` is dropped, as on a user's machine) and a first round,
not counted, writes the caches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def exe(checkout: Path, name: str) -> str:
    return str(checkout / ".venv" / "bin" / name)


def prepare(after: Path, data: Path, work: Path) -> dict[str, Path]:
    """One tiny model per project, trained with the newer checkout."""
    runs = {
        "intro-nn": ["train", "mnist", "--data-dir", data / "mnist", "--epochs", "1"],
        "audio-net": ["train", "--data-dir", data / "gtzan", "--no-pretrained", "--epochs", "1"],
        "austen-net": [
            *("train", "--corpus-dir", data / "austen", "--preset", "tiny"),
            *("--tokenizer", "char", "--max-steps", "5", "--warmup-steps", "1"),
        ],
    }
    extra = {"audio-net": ["--model", "cnn", "--cache-dir", work / "cache"]}
    found = {}
    for prog, argv in runs.items():
        out = work / prog
        cmd = [exe(after, prog), *map(str, argv), *map(str, extra.get(prog, [])), "--quiet"]
        subprocess.run([*cmd, "--out", str(out)], check=True, cwd=work, capture_output=True)
        found[prog] = out / "checkpoints" / "best.pt"
    return found


def commands(ckpt: dict[str, Path], data: Path, digit: Path) -> dict[str, list[str]]:
    clip = data / "gtzan" / "genres_original" / "jazz" / "jazz.00001.wav"
    return {
        "intro-nn --help": ["intro-nn", "--help"],
        "audio-net --help": ["audio-net", "--help"],
        "austen-net --help": ["austen-net", "--help"],
        "intro-nn predict mnist (1 image)": [
            *("intro-nn", "predict", "mnist", "--image", str(digit)),
            *("--checkpoint", str(ckpt["intro-nn"])),
        ],
        "audio-net predict (1 clip)": [
            *("audio-net", "predict", str(clip), "--checkpoint", str(ckpt["audio-net"])),
        ],
        "austen-net generate (20 tokens)": [
            *("austen-net", "generate", "--checkpoint", str(ckpt["austen-net"])),
            *("--max-new-tokens", "20", "--seed", "0"),
        ],
    }


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(checkout: Path, argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [exe(checkout, argv[0]), *argv[1:]], cwd=cwd, capture_output=True, env=ENV
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{checkout}: {' '.join(argv)} failed:\n{proc.stderr.decode()[-1500:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, default=Path("."))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--skip", nargs="*", default=[], help="leave out commands whose name contains this"
    )
    args = ap.parse_args()
    before, after, data = args.before.resolve(), args.after.resolve(), args.data.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt = prepare(after, data, work)
        digit = work / "digit.png"
        subprocess.run(
            [exe(after, "python"), "-c", DRAW_DIGIT, str(digit)], check=True, capture_output=True
        )
        cmds = {
            k: v
            for k, v in commands(ckpt, data, digit).items()
            if not any(s in k for s in args.skip)
        }
        times: dict[str, dict[str, list[float]]] = {k: {"before": [], "after": []} for k in cmds}
        for round_ in range(args.rounds + 1):  # round 0 writes the bytecode caches
            for name, argv in cmds.items():
                for label, checkout in (("before", before), ("after", after)):
                    seconds = wall(checkout, argv, work)
                    if round_:
                        times[name][label].append(seconds)
    cpu = cpu_name()
    result = {"machine": cpu, "rounds": args.rounds, "seconds_median": {}}
    for name, t in times.items():
        b, a = statistics.median(t["before"]), statistics.median(t["after"])
        result["seconds_median"][name] = {
            "before": round(b, 3),
            "after": round(a, 3),
            "range_before": [round(min(t["before"]), 3), round(max(t["before"]), 3)],
            "range_after": [round(min(t["after"]), 3), round(max(t["after"]), 3)],
            "speedup": round(b / a, 2),
        }
    print(json.dumps(result))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


DRAW_DIGIT = """
import sys
from PIL import Image, ImageDraw
img = Image.new("L", (200, 200), 255)
ImageDraw.Draw(img).line([(60, 40), (140, 40), (90, 170)], fill=0, width=14)
img.save(sys.argv[1])
"""

if __name__ == "__main__":
    main()
