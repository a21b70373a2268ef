"""Pretrained language models in transformers' layout, read into our GPT: ``austen-net import`` and
``train --init-from``.

Two architectures, the two that ``export`` writes, so a model goes both ways:

- ``GPT2LMHeadModel``: learned positions, LayerNorm with biases, the tanh-approximated GELU, every
  Linear a ``Conv1D`` (its weight stored transposed), the head tied to the embedding;
- ``LlamaForCausalLM``: RoPE with any ``rope_theta``, RMSNorm with its epsilon, SwiGLU of any
  width, grouped-query attention (fewer key/value heads than query heads), tied or untied head.
  transformers' RoPE pairs channel i with i + D/2 of a head, ours pairs 2i with 2i + 1: the rows
  of q and k are permuted within each head (the inverse of ``export.rope_rows``), which leaves
  every attention score unchanged.

Anything a real checkpoint of another kind needs (sliding windows, rope scaling, biases on q/k/v,
mixtures of experts, another architecture) is refused with a message naming it. SOURCE is a local
folder (``config.json``, ``model.safetensors`` or shards with their index, ``tokenizer.json``) or
a Hub name fetched through ``huggingface_hub`` into its usual cache.
"""

from __future__ import annotations

from pathlib import Path

import torch

from austen_net import PROJECT
from austen_net.model import GPT, GPTConfig, Imported
from austen_net.tokenizer import MAX_TOKENIZER_BYTES, HFTokenizer
from shared.checkpoint import model_from_checkpoint
from shared.errors import UserError
from shared.files import read_regular_file
from shared.hub import (
    Source,
    config_boolean,
    config_integer,
    config_number,
    read_model_json,
    read_safetensors_file,
    shown,
)
from shared.runs import save_checkpoint

SOURCE = Source(
    PROJECT,
    "SOURCE",
    "a pretrained model",
    wanted=(
        "config.json",
        "*.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ),
    packages=("safetensors", "tokenizers"),
)
SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")
MAX_CONTEXT = 1 << 16  # our checkpoints' bound on block_size
DEFAULT_LLAMA_CONTEXT = 2048  # a Llama's context unless --block-size asks for more


def source_folder(source: str, quiet: bool = False) -> Path:
    """A local folder as it is; otherwise a Hub name, downloaded (once) into the Hub's cache."""
    return SOURCE.folder(source, quiet)


def read_json(path: Path) -> dict:
    """A JSON object from a regular file of at most 16 MB (``shared.hub.read_model_json``)."""
    return read_model_json(path)


def architecture(config: dict, path: Path) -> str:
    names = config.get("architectures") or []
    kind = config.get("model_type")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{path}: architectures {shown(names)} is not a list of class names")
    if kind is not None and not isinstance(kind, str):
        raise UserError(f"{path}: model_type {shown(kind)} is not a name")
    if "GPT2LMHeadModel" in names or (not names and kind == "gpt2"):
        return "gpt2"
    if "LlamaForCausalLM" in names or (not names and kind == "llama"):
        return "llama"
    found = ", ".join(names) or kind or "none named"
    raise UserError(
        f"{path}: architecture {found} is not one austen-net reads (GPT2LMHeadModel, "
        "LlamaForCausalLM)"
    )


def refuse(path: Path, what: str) -> None:
    raise UserError(f"{path}: {what}: austen-net's model has no equivalent, so it is not imported")


def context(block_size: int | None, positions: int, source: Path, default: int) -> int:
    """The context to import: ``--block-size`` if the source has that many positions (the same
    rule ``train --init-from`` applies), else the source's own (at most ``default``)."""
    longest = min(positions, MAX_CONTEXT)
    if block_size is not None and block_size > longest:
        raise UserError(f"--block-size {block_size}: {source} has a context of {longest}")
    return block_size or min(longest, default)


def heads(n_embd: int, n_head: int, path: Path, rope: bool) -> None:
    if n_embd % n_head or (rope and (n_embd // n_head) % 2):
        width = " of even width" if rope else ""
        refuse(path, f"a width of {n_embd} does not split into {n_head} heads{width}")


def gpt2_config(c: dict, path: Path, block_size: int | None) -> GPTConfig:
    act = c.get("activation_function", "gelu_new")
    gelus = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "exact"}
    gelu = gelus.get(act) if isinstance(act, str) else None
    if gelu is None:
        refuse(path, f"activation_function {shown(act)}")
    for flag in (
        "scale_attn_by_inverse_layer_idx",
        "reorder_and_upcast_attn",
        "add_cross_attention",
    ):
        if c.get(flag):
            refuse(path, f"{flag} is set")
    if c.get("scale_attn_weights", True) is False:
        refuse(path, "scale_attn_weights is off")
    n_embd, positions = (
        config_integer(c, "n_embd", path),
        config_integer(c, "n_positions", path, 1, MAX_CONTEXT),
    )
    n_head = config_integer(c, "n_head", path, 1, 1024)
    heads(n_embd, n_head, path, rope=False)
    inner = c.get("n_inner")
    return GPTConfig(
        vocab_size=config_integer(c, "vocab_size", path),
        block_size=context(block_size, positions, path, MAX_CONTEXT),
        n_layer=config_integer(c, "n_layer", path, 1, 1024),
        n_head=n_head,
        n_embd=n_embd,
        dropout=0.0,
        bias=True,
        pos="learned",
        norm="layernorm",
        mlp="gelu",
        tie_weights=True,
        imported=Imported(
            intermediate_size=config_integer(c, "n_inner", path) if inner is not None else 0,
            norm_eps=config_number(c, "layer_norm_epsilon", 1e-5, path, 1.0),
            gelu=gelu,
        ),
    )


def rope_scaling(c: dict, path: Path) -> dict:
    """The RoPE fields (of ``Imported``) from ``rope_parameters`` (transformers 5) or ``rope_scaling``:
    the plain rotation or Llama 3's ("llama3"); any other scaling is refused by name."""
    parts = [c.get(k) or {} for k in ("rope_parameters", "rope_scaling")]
    if not all(isinstance(p, dict) for p in parts):
        refuse(path, f"rope parameters {shown(parts)}")
    kinds = [p.get("rope_type", p.get("type", "default")) for p in parts]
    scaled = [p for p, k in zip(parts, kinds, strict=True) if k not in ("default", None)]
    rope = {**parts[0], **parts[1], **(scaled[0] if scaled else {})}
    theta = {"rope_theta": rope.get("rope_theta", c.get("rope_theta", 10000.0))}
    out = {"rope_theta": config_number(theta, "rope_theta", 10000.0, path, 1e12)}
    kind = rope.get("rope_type", rope.get("type", "default")) if scaled else "default"
    if kind in ("default", None):
        return out
    if kind != "llama3":
        refuse(path, f"rope scaling {shown(kind)} (the plain rotation and llama3 are read)")
    low = config_number(rope, "low_freq_factor", 1.0, path, 1e4)
    high = config_number(rope, "high_freq_factor", 4.0, path, 1e4)
    if not high > low > 0:
        refuse(path, f"llama3 rope scaling with low_freq_factor {low}, high {high}")
    return {
        **out,
        "rope_factor": config_number(rope, "factor", 8.0, path, 1e4),
        "rope_low_freq_factor": low,
        "rope_high_freq_factor": high,
        "rope_original_context": config_integer(rope, "original_max_position_embeddings", path),
    }


def llama_config(c: dict, path: Path, block_size: int | None) -> GPTConfig:
    if c.get("sliding_window") or c.get("use_sliding_window"):
        refuse(path, "a sliding attention window")
    for flag in ("attention_bias", "mlp_bias"):
        if c.get(flag):
            refuse(path, f"{flag} is set (biases on the q/k/v or MLP projections)")
    if c.get("hidden_act", "silu") != "silu":
        refuse(path, f"hidden_act {shown(c['hidden_act'])}")
    if c.get("num_local_experts") or c.get("num_experts"):
        refuse(path, "a mixture of experts")
    n_embd, n_head = (
        config_integer(c, "hidden_size", path),
        config_integer(c, "num_attention_heads", path),
    )
    kv = c.get("num_key_value_heads") or n_head
    if not isinstance(kv, int) or isinstance(kv, bool) or not 1 <= kv <= n_head or n_head % kv:
        refuse(path, f"{shown(kv)} key/value heads for {n_head} query heads")
    heads(n_embd, n_head, path, rope=True)
    head_dim = c.get("head_dim")
    if head_dim is not None and head_dim != n_embd // n_head:
        refuse(path, f"head_dim {shown(head_dim)} with hidden_size {n_embd}, {n_head} heads")
    positions = config_integer(c, "max_position_embeddings", path, 1, 1 << 24)
    return GPTConfig(
        vocab_size=config_integer(c, "vocab_size", path),
        block_size=context(block_size, positions, path, DEFAULT_LLAMA_CONTEXT),
        n_layer=config_integer(c, "num_hidden_layers", path, 1, 1024),
        n_head=n_head,
        n_embd=n_embd,
        dropout=0.0,
        bias=False,
        pos="rope",
        norm="rmsnorm",
        mlp="swiglu",
        tie_weights=config_boolean(c, "tie_word_embeddings", False, path),
        imported=Imported(
            n_kv_head=kv if kv != n_head else 0,
            **rope_scaling(c, path),
            intermediate_size=config_integer(c, "intermediate_size", path),
            norm_eps=config_number(c, "rms_norm_eps", 1e-6, path, 1.0),
        ),
    )


def shard_names(index: Path) -> list[str]:
    """The shard files an index names: a ``weight_map`` of weight names to file names inside the
    folder (an absolute path or ``..`` would read a file elsewhere on the machine)."""
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise UserError(f"{index}: weight_map is not a mapping of weight names to file names")
    shards = sorted(set(weight_map.values()))
    for name in shards:
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise UserError(f"{index}: shard {shown(name)} is not a file inside the model folder")
    return shards


def read_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    index = folder / "model.safetensors.index.json"
    if index.exists() or index.is_symlink():  # read_json refuses one that is not a file
        files = [folder / s for s in shard_names(index)]
    else:
        files = [folder / "model.safetensors"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        raise UserError(
            f"{folder}: weights missing ({', '.join(missing) or 'no shards listed'}); a model in "
            "transformers' layout keeps them in model.safetensors (PyTorch .bin files are not read)"
        )
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights |= read_safetensors_file(f)  # (non-finite weights are refused here)
    return weights


def rope_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Rows of a q or k projection from our pairing (2i, 2i+1) to Llama's (i, i + D/2)."""
    out, inp = w.shape
    d = out // n_head
    return w.view(n_head, d // 2, 2, inp).transpose(1, 2).reshape(out, inp)


def inverse_rope_rows(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a q or k projection from transformers' pairing (i, i + D/2) to ours (2i, 2i+1)."""
    out, inp = w.shape
    d = out // heads
    return w.view(heads, 2, d // 2, inp).transpose(1, 2).reshape(out, inp)


def gpt2_weights(w: dict, cfg: GPTConfig) -> dict[str, torch.Tensor]:
    def get(name: str) -> torch.Tensor:
        for key in (name, "transformer." + name):
            if key in w:
                return w[key]
        raise KeyError(name)

    sd = {
        "tok_emb.weight": get("wte.weight"),
        "pos_emb.weight": get("wpe.weight")[: cfg.block_size],
        "norm.weight": get("ln_f.weight"),
        "norm.bias": get("ln_f.bias"),
    }
    for i in range(cfg.n_layer):
        p, q = f"h.{i}.", f"blocks.{i}."
        sd |= {
            q + "norm1.weight": get(p + "ln_1.weight"),
            q + "norm1.bias": get(p + "ln_1.bias"),
            q + "norm2.weight": get(p + "ln_2.weight"),
            q + "norm2.bias": get(p + "ln_2.bias"),
            q + "attn.qkv.weight": get(p + "attn.c_attn.weight").T,  # Conv1D: (in, out)
            q + "attn.qkv.bias": get(p + "attn.c_attn.bias"),
            q + "attn.proj.weight": get(p + "attn.c_proj.weight").T,
            q + "attn.proj.bias": get(p + "attn.c_proj.bias"),
            q + "mlp.up.weight": get(p + "mlp.c_fc.weight").T,
            q + "mlp.up.bias": get(p + "mlp.c_fc.bias"),
            q + "mlp.down.weight": get(p + "mlp.c_proj.weight").T,
            q + "mlp.down.bias": get(p + "mlp.c_proj.bias"),
        }
    sd["head.weight"] = sd["tok_emb.weight"]
    return sd


def llama_weights(w: dict, cfg: GPTConfig) -> dict[str, torch.Tensor]:
    sd = {"tok_emb.weight": w["model.embed_tokens.weight"], "norm.weight": w["model.norm.weight"]}
    sd["head.weight"] = sd["tok_emb.weight"] if cfg.tie_weights else w["lm_head.weight"]
    for i in range(cfg.n_layer):
        p, q = f"model.layers.{i}.", f"blocks.{i}."
        sd |= {
            q + "norm1.weight": w[p + "input_layernorm.weight"],
            q + "norm2.weight": w[p + "post_attention_layernorm.weight"],
            q + "attn.qkv.weight": torch.cat(
                [
                    inverse_rope_rows(w[p + "self_attn.q_proj.weight"], cfg.n_head),
                    inverse_rope_rows(w[p + "self_attn.k_proj.weight"], cfg.kv_heads),
                    w[p + "self_attn.v_proj.weight"],
                ]
            ),
            q + "attn.proj.weight": w[p + "self_attn.o_proj.weight"],
            q + "mlp.up.weight": torch.cat(
                [w[p + "mlp.up_proj.weight"], w[p + "mlp.gate_proj.weight"]]
            ),
            q + "mlp.down.weight": w[p + "mlp.down_proj.weight"],
        }
    return sd


def converted(sd: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Each tensor in ``dtype``, contiguous, converted once even where two names share it. None:
    as stored, each in memory of its own (a model that replaces its weights, as merging LoRA
    does, would otherwise keep the whole mapped file alive through the views it keeps). ``sd`` is
    emptied as it goes: a tensor and its copy exist together one at a time."""
    done: dict[int, torch.Tensor] = {}  # (an id stays unique: every tensor of sd is alive here)
    out = {}
    for name in list(sd):
        t = sd.pop(name)
        if id(t) not in done:
            done[id(t)] = (
                t.clone(memory_format=torch.contiguous_format)
                if dtype is None
                else t.to(dtype).contiguous()
            )
        out[name] = done[id(t)]
    return out


def tokenizer_of(folder: Path) -> HFTokenizer:
    path = folder / "tokenizer.json"
    if not path.exists() and not path.is_symlink():
        raise UserError(
            f"{folder} has no tokenizer.json (transformers' fast tokenizer): save the tokenizer "
            "with a recent transformers (AutoTokenizer ... save_pretrained) and import again"
        )
    raw = read_regular_file(path, MAX_TOKENIZER_BYTES, "tokenizer to store")
    special = {}
    config = folder / "tokenizer_config.json"
    if config.is_file():
        for name, value in read_json(config).items():
            if name in SPECIAL_NAMES:
                value = value.get("content") if isinstance(value, dict) else value
                if isinstance(value, str):
                    special[name] = value
    try:
        return HFTokenizer(raw.decode("utf-8"), special)
    except Exception as exc:  # the tokenizers library raises plain Exceptions
        raise UserError(f"{path} is not a tokenizer the tokenizers library reads ({exc})") from exc


def load_pretrained(
    source: str,
    *,
    block_size: int | None = None,
    dropout: float = 0.0,
    quiet: bool = False,
    dtype: torch.dtype | None = torch.float32,
) -> tuple[GPT, HFTokenizer, dict]:
    """(our GPT with the source's weights in ``dtype`` (None: as stored), its tokenizer, what was
    imported). The
    model takes the converted tensors themselves: at most the file's tensors and the model exist
    at once (a LoRA base in bf16 never passes through fp32)."""
    SOURCE.require()
    folder = source_folder(source, quiet)
    config = read_json(folder / "config.json")
    arch = architecture(config, folder)
    cfg = (gpt2_config if arch == "gpt2" else llama_config)(config, folder, block_size)
    cfg.dropout = dropout
    tok = tokenizer_of(folder)
    if tok.vocab_size > cfg.vocab_size:
        raise UserError(
            f"{folder}: the tokenizer has {tok.vocab_size} tokens, the model {cfg.vocab_size}"
        )
    raw = read_safetensors(folder)
    try:
        sd = (gpt2_weights if arch == "gpt2" else llama_weights)(raw, cfg)
        sd = converted(sd, dtype)
        del raw
    except KeyError as exc:
        raise UserError(f"{folder}: the weights lack {exc.args[0]} ({arch} layout)") from exc
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:  # a tensor of the wrong rank
        raise UserError(f"{folder}: weights that do not fit its config.json ({exc})") from exc
    # shapes checked against a model built on the meta device first: memory follows the weights
    # in the files, never a config that asks for a 262,144-token vocabulary 4,096 wide
    model = model_from_checkpoint(lambda: GPT(cfg), sd, folder, assign=True)
    about = {
        "source": source,
        "folder": str(folder),
        "architecture": "GPT2LMHeadModel" if arch == "gpt2" else "LlamaForCausalLM",
        "parameters_m": round(model.num_params() / 1e6, 2),
    }
    return model, tok, about


def import_checkpoint(source: str, out: Path, block_size: int | None, quiet: bool = False) -> dict:
    """``austen-net import``: the source as an ordinary checkpoint (step 0) that ``generate``,
    ``evaluate``, ``demo``, ``export``, ``bench`` and ``train --init-from`` take unchanged."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise UserError(f"--out {out} exists: give a new file name")
    model, tok, about = load_pretrained(source, block_size=block_size, quiet=quiet)
    payload = {
        "model": model.state_dict(),
        "model_config": model.cfg.as_dict(),
        "tokenizer": tok.state(),
        "step": 0,
        "config": {"init_from": source},
        "imported": about,
        "prompt": "",
    }
    save_checkpoint(out, payload, project=PROJECT)
    return {
        **about,
        "out": str(out),
        "context": model.cfg.block_size,
        "vocab_size": model.cfg.vocab_size,
        "tokenizer": tok.kind,
    }
