"""austen-net's command configurations (each field is a CLI flag)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from austen_net.presets import LORA_LR, PRESETS, TRAIN_PRESETS
from shared.cli import (
    SEED_RANGE,
    DataCommandConfig,
    DemoOptions,
    RunConfig,
    ServeBenchOptions,
    ServeOptions,
    arg,
    check_bounds,
)
from shared.errors import UserError
from shared.text import valid_text


@dataclass
class CorpusOptions:
    corpus_dir: Path | None = arg(
        None, "folder of local Gutenberg files (pg<id>.txt or <id>-<slug>.txt)"
    )
    download: bool = arg(True, "download missing works from Project Gutenberg")


# --compile auto on a CPU: the shortest run that repays compiling (NOTES.md, "Compiling")
# LoRA's targets, named as transformers and peft name a Llama's projections
MAX_LORA_RANK = 1024  # --lora-rank's bound, and an imported adapter's r
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CPU_COMPILE_MIN_STEPS = 1000
# generate --compile auto on a CPU: the fewest tokens that repay compiling the decode step (the
# compile time over the time it saves a token, measured: NOTES.md, "Compiling"); always on CUDA
GENERATE_COMPILE_MIN_TOKENS = 30_000
BUSY_LOAD = 0.5  # load per core from which --compile auto decodes eagerly (README, "Speed")


@dataclass
class TrainConfig(RunConfig, CorpusOptions):
    compile: Literal["auto", "on", "off"] = arg(
        "auto",
        "torch.compile the model: on (also plain --compile), off (also --no-compile), or auto: "
        f"always on CUDA; on a CPU from {CPU_COMPILE_MIN_STEPS} --max-steps up, where the compile "
        "time (tens of seconds on a 2-core CPU) is repaid by faster steps (see NOTES.md)",
        const="on",
        negative=("--no-compile", "off"),
    )
    preset: Literal["default", "seed", "cpu", "tiny", "finetune"] = arg(
        "default",
        "model size preset; cpu: 4 layers x 256, context 128, and the training settings that give "
        "readable text on a laptop CPU in about 10 minutes (BPE 4096, batch 32, 600 steps, "
        "--max-minutes 10; flags you give win); finetune (the default with --init-from): the "
        "source's shape, context 256, lr 5e-5, warmup 20, batch 8 x 4 accumulated, 300 steps",
    )
    init_from: str | None = arg(
        None,
        "start from pretrained weights: a transformers folder, a Hub name (gpt2, "
        "HuggingFaceTB/SmolLM2-135M) or an austen-net checkpoint; the model's shape and tokenizer "
        "come from it",
    )
    text: list[Path] = arg(
        default_factory=list,
        help="train on your own text instead of the Austen works: UTF-8 files, or folders whose "
        ".txt files are read (recursively); the end of each file is validation",
    )
    tokenizer: Literal["bpe", "char"] = arg("bpe", "sentencepiece BPE or characters")
    vocab_size: int = arg(
        8192,
        "BPE vocabulary size (at most: a small text supports fewer; unused by --tokenizer char)",
        low=260,
        high=65536,
    )
    holdout_works: tuple[int, ...] = arg(
        (), "Gutenberg ids moved whole out of training into validation"
    )
    val_fraction: float = arg(
        0.1, "share of each work (its end) used for validation", above=0, high=0.5
    )
    max_steps: int = arg(3000, "optimizer steps", low=1)
    max_minutes: float | None = arg(
        None, "stop after this many minutes (evaluates and saves first)", above=0
    )
    batch_size: int = arg(64, "sequences per micro-batch", low=1)
    grad_accum: int = arg(1, "micro-batches per optimizer step", low=1)
    lr: float = arg(1e-3, "peak learning rate (AdamW)", above=0)
    min_lr_ratio: float = arg(0.1, "final learning rate as a share of the peak (cosine)")
    warmup_steps: int = arg(100, "linear warmup steps")
    weight_decay: float = arg(0.1, "AdamW weight decay on matrices")
    beta1: float = arg(0.9, "AdamW beta1", low=0, high=0.9999)
    beta2: float = arg(
        0.95, "AdamW beta2 (nanoGPT's character recipes use 0.99)", low=0, high=0.9999
    )
    clip_grad: float = arg(1.0, "gradient-norm clip (0: off)")
    eval_every: int = arg(250, "evaluate on the validation split every N steps", low=1)
    eval_tokens: int = arg(
        1_000_000,
        "validation tokens scored at each evaluation (windows spread evenly over a larger split, "
        "the same each time; 0: the whole split; 'evaluate' always scores all of it)",
        low=0,
    )
    log_every: int = arg(20, "log training loss every N steps", low=1)
    n_layer: int | None = arg(None, "override the preset's layers")
    n_head: int | None = arg(None, "override the preset's heads")
    n_embd: int | None = arg(None, "override the preset's width")
    block_size: int | None = arg(None, "override the preset's context length")
    dropout: float | None = arg(None, "override the preset's dropout")
    pos: Literal["rope", "learned"] = arg("rope", "position encoding")
    norm: Literal["rmsnorm", "layernorm"] = arg("rmsnorm", "normalisation layer")
    mlp: Literal["swiglu", "gelu"] = arg("swiglu", "MLP activation")
    grad_checkpoint: bool = arg(
        False,
        "activation checkpointing: keep each block's input only and recompute its activations "
        "in the backward pass (less memory for long contexts, about a third more compute)",
    )
    fsdp: bool = arg(
        False,
        "under torchrun: shard weights, gradients and AdamW state across the processes (FSDP2) "
        "instead of a full copy each (DDP), for a full fine-tune larger than one device",
    )
    lora_rank: int = arg(
        0,
        "train low-rank adapters (LoRA) of this rank beside the frozen --init-from weights, at "
        f"lr {LORA_LR:g} unless --lr is given: checkpoints hold the adapters only (0: full "
        "fine-tuning)",
        low=0,
        high=MAX_LORA_RANK,
    )
    lora_alpha: float = arg(16.0, "LoRA scale numerator: adapters add (alpha / rank) B A", above=0)
    lora_dropout: float = arg(0.0, "dropout on the adapters' input", low=0, high=0.9)
    lora_targets: tuple[str, ...] = arg(
        LORA_TARGETS,
        help="projections to adapt, named as transformers and peft name them: "
        + ", ".join(LORA_TARGETS),
    )
    lora_base: Literal["bf16", "fp32"] = arg(
        "bf16", "dtype of the frozen weights under LoRA (bf16: half the memory)"
    )

    def settle(self) -> TrainConfig:
        """``train``'s first step: the preset's shape and training settings where no flag gives
        them (a pretrained model is fine-tuned unless a preset is typed); the rules across flags."""
        if self.init_from and "preset" not in self.typed:
            self.preset = "finetune"
        elif self.preset == "finetune" and not self.init_from:
            raise UserError(
                "--preset finetune fine-tunes a pretrained model: add --init-from SOURCE"
            )
        preset = {**PRESETS[self.preset], **TRAIN_PRESETS.get(self.preset, {})}
        for name, value in preset.items():
            if name not in self.typed:
                setattr(self, name, value)
        if self.text and self.holdout_works:
            raise UserError("--holdout-works names Austen works: it does not apply to --text")
        if self.fsdp and self.lora_rank:
            raise UserError(
                "--fsdp shards a full fine-tune; LoRA's adapters are megabytes: run it under "
                "torchrun without --fsdp (each process keeps the frozen base, DDP averages them)"
            )
        if self.lora_rank and not self.init_from:
            raise UserError("--lora-rank adapts a pretrained model: add --init-from SOURCE")
        if self.lora_rank and "lr" not in self.typed:
            self.lr = LORA_LR
        unknown = sorted(set(self.lora_targets) - set(LORA_TARGETS))
        if unknown or not self.lora_targets:
            raise UserError(
                f"--lora-targets {' '.join(unknown) or '(none)'}: choose among "
                + ", ".join(LORA_TARGETS)
            )
        check_bounds(self)  # on what the preset filled in too
        return self


@dataclass
class EvaluateConfig(RunConfig, CorpusOptions):
    checkpoint: Path | None = arg(None, "checkpoint written by 'austen-net train'", required=True)
    text: list[Path] = arg(
        default_factory=list,
        help="text files (or folders of .txt) to score whole, instead of the validation split of "
        "the run's own text",
    )
    batch_size: int = arg(32, "windows per forward pass")
    weights: Literal["fp32", "bf16", "int8"] = arg(
        "fp32", "weights to score with (what 'generate --weights' would use): fp32, bf16 or int8"
    )


@dataclass
class GenerateConfig:
    checkpoint: Path | None = arg(None, "checkpoint written by 'austen-net train'", required=True)
    weights: Literal["auto", "fp32", "bf16", "int8"] = arg(
        "auto",
        "weights to generate with: auto (the fastest on this machine within +0.005 bits/char of "
        "fp32 on the run's validation text, measured once and cached), as trained (fp32), bf16, "
        "or int8 (the Linear layers' weights in int8, one scale per output channel, CPU only: "
        "PyTorch's weight-only int8 kernel, compiled with the decode step, on CPUs with AVX-512, "
        "else fbgemm's dynamic int8, eager): fewer bytes read per token",
    )
    prompt: str = arg("", "text to continue (empty: start a new paragraph)", parse=valid_text)
    max_new_tokens: int = arg(500, "tokens to generate per sample", low=1)
    temperature: float = arg(0.8, "sampling temperature; 0 is greedy", low=0, high=100)
    top_k: int = arg(
        200, "sample among the k most likely tokens (0: no top-k)", low=0, high=1 << 20
    )
    top_p: float | None = arg(
        None, "nucleus sampling: the smallest set with this probability", above=0, high=1
    )
    seed: int | None = arg(None, "sampling seed (default: random)", **SEED_RANGE)
    num_samples: int = arg(1, "independent samples", low=1)
    batch_samples: bool = arg(
        True,
        "draw --num-samples in one batch (each token of all samples in one pass over the weights: "
        "faster; the first sample streams, the others are written when they end); "
        "--no-batch-samples: one after the other, each streamed. --infinite is one at a time",
    )
    infinite: bool = arg(False, "keep writing until interrupted (Ctrl-C), sliding the context")
    cache: bool = arg(
        True,
        "keep the keys and values of earlier tokens (--no-cache recomputes the whole context "
        "for every token: slow, for comparison)",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = arg("auto", "where to run")
    compile: Literal["auto", "on", "off"] = arg(
        "auto",
        "torch.compile the one-token decode step (fixed shapes, CUDA graphs on a GPU): on, off, or "
        "auto: on CUDA, and on a CPU where the tokens asked for repay the compile time "
        f"({GENERATE_COMPILE_MIN_TOKENS:,} of them, --infinite never) while no other work keeps "
        "the cores busy; fbgemm's int8 (CPUs "
        "without AVX-512) runs eagerly",
        const="on",
        negative=("--no-compile", "off"),
    )

    def __post_init__(self) -> None:
        check_bounds(self)  # the bounds its flags declare, on a config built in code too


@dataclass
class ExportConfig:
    checkpoint: Path | None = arg(None, "checkpoint written by 'austen-net train'", required=True)
    out: Path | None = arg(None, "new folder for the exported model", required=True)
    format: Literal["hf", "peft"] = arg(
        "hf",
        "hf: Hugging Face transformers (Llama or GPT-2 layout, safetensors, tokenizer; a LoRA "
        "run's adapters merged into the weights); peft: a LoRA run's adapters alone "
        "(adapter_config.json, adapter_model.safetensors) for peft or vLLM on its base model",
    )


@dataclass
class ImportConfig:
    source: str | None = arg(
        None,
        "a folder in transformers' layout (config.json, model.safetensors, tokenizer.json) or a "
        "Hub name (gpt2, HuggingFaceTB/SmolLM2-135M)",
        positional=True,
    )
    out: Path | None = arg(None, "the austen-net checkpoint to write (a new file)", required=True)
    block_size: int | None = arg(
        None,
        "context length to keep (default: the source's, at most 2048 for RoPE models)",
        low=1,
        high=1 << 16,
    )
    quiet: bool = arg(False, "no download progress")
    base: str | None = arg(
        None,
        "for a peft adapter folder (adapter_config.json): the base model it adapts (default: "
        "the base_model_name_or_path it names)",
    )

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass
class BenchConfig(RunConfig, ServeBenchOptions):
    preset: Literal["seed", "default", "tiny"] = arg("seed", "model preset to time")
    vocab_size: int = arg(8192, "vocabulary size of the timed model")
    batch_size: int = arg(64, "training batch size")
    train_steps: int | None = arg(None, "timed training steps (default: 20 on CUDA, 3 on CPU)")
    new_tokens: int = arg(512, "generated tokens of the long generation timing")
    prompt_tokens: int = arg(16, "prompt length of the generation timings")
    finetune: bool = arg(
        False,
        "time one fine-tuning step instead: full, ours with LoRA, and peft + transformers with the "
        "same rank and targets, each in its own process (peak memory and tokens/s)",
    )
    shape: Literal["smollm2-135m", "llama-3.2-1b", "tiny"] = arg(
        "smollm2-135m", "--finetune: the model shape, built from its config with random weights"
    )
    context: int = arg(512, "--finetune: tokens per sequence", low=8, high=8192)
    finetune_batch: int = arg(1, "--finetune: sequences per step", low=1, high=1024)
    finetune_steps: int | None = arg(
        None,
        "--finetune: timed steps after one warm-up step (default: 5 on CUDA, 1 on a CPU)",
        low=1,
    )
    rank: int = arg(8, "--finetune: LoRA rank (alpha is twice the rank)", low=1, high=1024)
    grad_checkpoint: bool = arg(False, "--finetune: activation checkpointing in every mode")
    checkpoint: Path | None = arg(None, "--serve: the checkpoint to serve (default: newest run)")
    serve_requests: int = arg(
        32, "--serve: completions sent at each concurrency", low=1, high=100_000
    )
    serve_tokens: int = arg(64, "--serve: tokens each completion asks for", low=1, high=100_000)
    max_batch: int = arg(16, "--serve: the server's --max-batch", low=1, high=256)


@dataclass
class DataConfig(DataCommandConfig, CorpusOptions):
    """``austen-net data``: the works downloaded or checked (from ``--corpus-dir`` too)."""


@dataclass
class DemoConfig(DemoOptions):
    """Stream text in the style the model learned and score pasted text in a browser page (Gradio, local only)."""

    weights: Literal["auto", "fp32", "bf16", "int8"] = arg(
        "auto", "weights to write with, as 'generate --weights' (auto: the fastest within bounds)"
    )
    max_tokens: int = arg(
        5000, "the most tokens one generation may ask for", group="demo", low=1, high=1_000_000
    )


@dataclass
class ServeConfig(ServeOptions):
    """OpenAI's completions API over HTTP (POST /v1/completions, plain or streamed; GET /v1/models),
    concurrent requests decoded together, with /health and /metrics."""

    weights: Literal["auto", "fp32", "bf16", "int8"] = arg(
        "auto", "weights to write with, as 'generate --weights' (auto: the fastest within bounds)"
    )
    max_tokens: int = arg(
        1024, "the most tokens one request may ask for", group="serve", low=1, high=1_000_000
    )
