"""Low-rank adaptation (LoRA): the pretrained weights frozen, small trainable matrices beside them.

A frozen projection ``W`` (out x in) gains ``scale * B @ A`` with ``A`` (r x in) and ``B``
(out x r), ``scale = alpha / r``; ``B`` starts at zero, so training starts from the pretrained
model exactly (Hu et al., 2021). Only ``A`` and ``B`` train: for rank 8 on every projection of a
Llama-3.2-1B that is 11M numbers instead of 1.2B.

Our model fuses projections that transformers keeps apart (``attn.qkv`` is q, k and v;
``mlp.up`` is up and gate), so an adapter is attached per **segment** of a fused weight's rows,
named as transformers and peft name the projection (``q_proj`` ... ``down_proj``). Each segment
has its own ``A`` and ``B``: exactly peft's adapters, one per target module, which is what lets
``peft_state`` write a file ``peft.PeftModel.from_pretrained`` loads (rows of q and k reordered
from our rotary pairing to transformers', as the weights are on export).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from austen_net.config import LORA_TARGETS, MAX_LORA_RANK
from austen_net.model import GPT
from austen_net.pretrained import inverse_rope_rows, load_pretrained, read_json, rope_rows
from shared.cli import checked_number
from shared.errors import UserError
from shared.hub import read_safetensors_file
from shared.runs import save_checkpoint

TARGETS = LORA_TARGETS
BASE_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}  # --lora-base
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MAX_ALPHA = 1e6  # alpha / rank scales the adapters: peft's configs use 8 to 512


@dataclass(frozen=True)
class LoRASettings:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = TARGETS

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def segments(model: GPT) -> dict[str, tuple[str, int, int]]:
    """Each transformers projection name -> (our module's name in a block, first row, end row)."""
    c = model.cfg
    q, kv = c.n_embd, c.kv_heads * c.head_dim
    hidden = c.mlp_hidden
    return {
        "q_proj": ("attn.qkv", 0, q),
        "k_proj": ("attn.qkv", q, q + kv),
        "v_proj": ("attn.qkv", q + kv, q + 2 * kv),
        "o_proj": ("attn.proj", 0, c.n_embd),
        "up_proj": ("mlp.up", 0, hidden),  # our SwiGLU: h.chunk(2) is (up, gate)
        "gate_proj": ("mlp.up", hidden, 2 * hidden),
        "down_proj": ("mlp.down", 0, c.n_embd),
    }


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus one low-rank adapter per named segment of its output rows."""

    def __init__(self, base: nn.Linear, parts: dict[str, tuple[int, int]], s: LoRASettings):
        super().__init__()
        self.base, self.scale = base, s.scale
        self.parts = dict(sorted(parts.items(), key=lambda kv: kv[1][0]))  # by first row
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        for name, (start, end) in self.parts.items():
            a = torch.empty(s.rank, base.in_features, device=base.weight.device)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as peft initialises lora_A
            self.lora_A[name] = nn.Parameter(a)
            self.lora_B[name] = nn.Parameter(
                torch.zeros(end - start, s.rank, device=base.weight.device)
            )
        self.drop = nn.Dropout(s.dropout) if s.dropout > 0 else nn.Identity()

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """``scale * B @ A`` applied to ``x``, zero in the rows no adapter covers."""
        h, pieces, row = self.drop(x), [], 0
        for name, (start, end) in self.parts.items():
            if start > row:
                pieces.append(h.new_zeros(*h.shape[:-1], start - row))
            a, b = self.lora_A[name], self.lora_B[name]
            pieces.append(F.linear(F.linear(h, a.to(h.dtype)), b.to(h.dtype)))
            row = end
        if row < self.base.out_features:
            pieces.append(h.new_zeros(*h.shape[:-1], self.base.out_features - row))
        return torch.cat(pieces, dim=-1) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.delta(x).to(x.dtype)

    @torch.no_grad()
    def merged(self, dtype: torch.dtype | None = None) -> nn.Linear:
        """The base layer with the adapters folded into its weight: summed in fp32, stored in
        ``dtype`` (the base's when None)."""
        base = self.base.weight
        w = base.float()  # the weight itself when it is fp32, else an fp32 copy of it
        for name, (start, end) in self.parts.items():
            w[start:end] += self.lora_B[name].float() @ self.lora_A[name].float() * self.scale
        w = w.to(dtype or base.dtype)
        self.base.weight = (
            nn.Parameter(w, requires_grad=False) if isinstance(base, nn.Parameter) else w
        )
        return self.base


def module_at(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    parent, _, leaf = dotted.rpartition(".")
    return root.get_submodule(parent) if parent else root, leaf


def apply_lora(model: GPT, s: LoRASettings, base_dtype: torch.dtype | None = None) -> GPT:
    """Freeze every weight of ``model`` (cast to ``base_dtype`` when given), then attach adapters
    (fp32) to the targeted projections of every block. Returns the same model."""
    unknown = sorted(set(s.targets) - set(TARGETS))
    if unknown or not s.targets:
        raise ValueError(f"LoRA targets must be among {', '.join(TARGETS)}, got {unknown or '[]'}")
    if model.cfg.mlp != "swiglu" or model.cfg.pos != "rope":
        raise ValueError("LoRA adapters need the Llama layout (RoPE, SwiGLU): our default")
    model.requires_grad_(False)
    if base_dtype is not None:
        model.to(base_dtype)
    by_module: dict[str, dict[str, tuple[int, int]]] = {}
    for name, (module, start, end) in segments(model).items():
        if name in s.targets:
            by_module.setdefault(module, {})[name] = (start, end)
    for block in model.blocks:
        for module, parts in by_module.items():
            parent, leaf = module_at(block, module)
            setattr(parent, leaf, LoRALinear(getattr(parent, leaf), parts, s))
    return model


def adapters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors, under our names (what a LoRA checkpoint keeps)."""
    return {k: v for k, v in model.state_dict().items() if ".lora_A." in k or ".lora_B." in k}


def merge_lora(model: GPT, dtype: torch.dtype | None = None) -> GPT:
    """Fold every adapter into its base weight (summed in fp32, stored in ``dtype``: the base's
    when None); the model is plain ``GPT`` again."""
    for block in model.blocks:
        for module in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down"):
            parent, leaf = module_at(block, module)
            layer = getattr(parent, leaf)
            if isinstance(layer, LoRALinear):
                setattr(parent, leaf, layer.merged(dtype))
    return model


def lora_layers(model: GPT):
    """(block index, transformers projection name, the LoRALinear, first row) for every adapter."""
    for i, block in enumerate(model.blocks):
        for module in ("attn.qkv", "attn.proj", "mlp.up", "mlp.down"):
            parent, leaf = module_at(block, module)
            layer = getattr(parent, leaf)
            if isinstance(layer, LoRALinear):
                for name in layer.parts:
                    yield i, name, layer


def hf_rows(b: torch.Tensor, name: str, model: GPT) -> torch.Tensor:
    """A ``B`` matrix's rows in transformers' order (q and k: rotary pairs (i, i + D/2))."""
    if name == "q_proj":
        return rope_rows(b, model.cfg.n_head)
    if name == "k_proj":
        return rope_rows(b, model.cfg.kv_heads)
    return b


def peft_state(model: GPT) -> dict[str, torch.Tensor]:
    """The adapters as peft saves them for a ``LlamaForCausalLM``
    (``adapter_model.safetensors``: ``base_model.model.model.layers.<i>.self_attn.q_proj.lora_A.weight``)."""
    out = {}
    for i, name, layer in lora_layers(model):
        group = "self_attn" if name in ATTENTION else "mlp"
        key = f"base_model.model.model.layers.{i}.{group}.{name}"
        out[f"{key}.lora_A.weight"] = layer.lora_A[name].detach().float().contiguous()
        b = hf_rows(layer.lora_B[name].detach().float(), name, model)
        out[f"{key}.lora_B.weight"] = b.contiguous()
    return out


def peft_config(s: LoRASettings, base_model: str | None) -> dict:
    """``adapter_config.json`` for peft (and vLLM, which reads the same file)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": s.rank,
        "lora_alpha": s.alpha,
        "lora_dropout": s.dropout,
        "target_modules": sorted(s.targets),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
    }


def load_peft_state(model: GPT, state: dict[str, torch.Tensor]) -> None:
    """Load adapters saved by peft for a ``LlamaForCausalLM`` into ``model`` (adapters attached
    by ``apply_lora`` with the same targets and rank); every adapter must be in ``state``."""
    expected = set()
    with torch.no_grad():
        for i, name, layer in lora_layers(model):
            group = "self_attn" if name in ATTENTION else "mlp"
            key = f"base_model.model.model.layers.{i}.{group}.{name}"
            a, b = state[f"{key}.lora_A.weight"], state[f"{key}.lora_B.weight"]
            if name in ("q_proj", "k_proj"):
                heads = model.cfg.n_head if name == "q_proj" else model.cfg.kv_heads
                b = inverse_rope_rows(b, heads)
            layer.lora_A[name].copy_(a)
            layer.lora_B[name].copy_(b)
            expected |= {f"{key}.lora_A.weight", f"{key}.lora_B.weight"}
    extra = sorted(set(state) - expected)
    if extra:
        raise ValueError(f"adapters for modules this model does not adapt: {extra[:3]}")


def freeze_into_buffers(model: nn.Module) -> None:
    """Every frozen parameter becomes a non-persistent buffer: the optimizer, DDP and
    ``state_dict`` (so every checkpoint) then see the adapters alone; the frozen weights come back
    from the base model each time the run is loaded. Tied weights stay one tensor."""
    frozen: dict[int, torch.Tensor] = {}  # one buffer for a tied weight, as it was one parameter
    for module in model.modules():
        for name, p in list(module._parameters.items()):
            if p is not None and not p.requires_grad:
                del module._parameters[name]
                buffer = frozen.setdefault(id(p), p.detach())
                module.register_buffer(name, buffer, persistent=False)


def settings_from(config: dict) -> LoRASettings:
    """A run's LoRA settings from its saved ``config`` (``TrainConfig`` as JSON)."""
    return LoRASettings(
        rank=int(config["lora_rank"]),
        alpha=float(config["lora_alpha"]),
        dropout=float(config["lora_dropout"]),
        targets=tuple(config["lora_targets"]),
    )


def fingerprint(weights: dict[str, torch.Tensor]) -> str:
    """A quick identity of a base model's weights (names, shapes, and the first and last 1024
    values of every tensor, rounded to bf16 so that the base loaded in bf16 for training and in
    fp32 for generation is the same base): a LoRA checkpoint names the base it needs, and a
    different model under the same name (a new revision on the Hub) is refused instead of
    silently adapted."""
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().reshape(-1)
        h.update(f"{name}|{tuple(weights[name].shape)}|".encode())
        for part in (t[:1024], t[-1024:]):
            h.update(part.to("cpu", torch.bfloat16).float().numpy().tobytes())
    return h.hexdigest()


def thaw(model: nn.Module) -> None:
    """The inverse of ``freeze_into_buffers``: frozen weights back as (frozen) parameters, so
    ``state_dict`` holds them again (a merged model, exported whole)."""
    for module in model.modules():
        for name in [k for k in module._buffers if k in ("weight", "bias")]:
            if name in module._non_persistent_buffers_set:
                tensor = module._buffers.pop(name)
                module._non_persistent_buffers_set.discard(name)
                module.register_parameter(name, nn.Parameter(tensor, requires_grad=False))


def adapter_settings(adapter: dict, folder) -> LoRASettings:
    """peft's ``adapter_config.json`` as our settings; what we do not implement is refused (any
    adapter type but LoRA, by name; numbers outside their ranges)."""
    kind = adapter.get("peft_type", "LORA")
    if kind != "LORA":
        raise UserError(f"{folder}: peft_type {str(kind)[:40]!r} is not LoRA, the one adapter read")
    for key, plain in (("use_dora", False), ("use_rslora", False), ("fan_in_fan_out", False)):
        if adapter.get(key, plain) != plain:
            raise UserError(f"{folder}: adapter_config.json sets {key}, which is not plain LoRA")
    if adapter.get("bias", "none") != "none" or adapter.get("modules_to_save"):
        raise UserError(f"{folder}: adapters that also train biases or whole modules")
    targets = adapter.get("target_modules")
    if not isinstance(targets, list) or not set(targets) <= set(TARGETS) or not targets:
        raise UserError(f"{folder}: target_modules {targets!r}: a list among {', '.join(TARGETS)}")
    rank, alpha = adapter.get("r"), adapter.get("lora_alpha")
    dropout = adapter.get("lora_dropout") or 0.0
    where = f"{folder}/adapter_config.json"
    checked_number(rank, f"{where}: r", int, low=1, high=MAX_LORA_RANK)
    checked_number(alpha, f"{where}: lora_alpha", float, above=0, high=MAX_ALPHA)
    checked_number(dropout, f"{where}: lora_dropout", float, low=0, high=0.9)
    return LoRASettings(rank, float(alpha), float(dropout), tuple(targets))


def import_adapter(folder, base: str | None, out, block_size: int | None, quiet: bool) -> dict:
    """``austen-net import ADAPTER_FOLDER``: peft's adapters on the base they name (or ``--base``)
    as a LoRA checkpoint (the adapters alone) that every command takes."""
    adapter = read_json(folder / "adapter_config.json")
    settings = adapter_settings(adapter, folder)
    base = base or adapter.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise UserError(f"{folder}: adapter_config.json names no base model: pass --base SOURCE")
    model, tok, about = load_pretrained(base, block_size=block_size, quiet=quiet)
    start = fingerprint(model.state_dict())
    apply_lora(model, settings)
    freeze_into_buffers(model)
    state = read_safetensors_file(folder / "adapter_model.safetensors")  # finite, or refused
    try:
        load_peft_state(model, state)
    except (KeyError, RuntimeError, ValueError, OSError) as exc:
        raise UserError(f"{folder}: adapters that do not fit {base} ({exc})") from None
    config = {
        "init_from": base,
        "lora_rank": settings.rank,
        "lora_alpha": settings.alpha,
        "lora_dropout": settings.dropout,
        "lora_targets": list(settings.targets),
    }
    payload = {
        "model": model.state_dict(),
        "model_config": model.cfg.as_dict(),
        "tokenizer": tok.state(),
        "step": 0,
        "config": config,
        "lora": {"base": base, "base_fingerprint": start, "base_dtype": "fp32"},
        "imported": {**about, "adapter": str(folder)},
        "prompt": "",
    }
    save_checkpoint(out, payload, project="austen-net")
    return {**about, "out": str(out), "adapter": str(folder), "rank": settings.rank}
