"""``austen-net export --format hf``: a folder that Hugging Face ``transformers`` loads with no custom
code (``AutoModelForCausalLM`` and ``AutoTokenizer``), and from there llama.cpp, vLLM or the Hub.

Our default layout (RoPE, RMSNorm, SwiGLU, tied embeddings, no biases) is a Llama; the
``--pos learned --norm layernorm --mlp gelu`` layout is a GPT-2. The weights map one to one except:

- our fused ``qkv`` projection is split into q/k/v (Llama) or transposed into GPT-2's ``Conv1D``;
- our SwiGLU ``up`` projection holds [up; gate] (``silu(gate) * up``): split into up and gate;
- our RoPE rotates channel pairs (2i, 2i+1) of a head, Llama's ``rotate_half`` pairs (i, i + D/2)
  with the same frequencies: the rows of q and k are permuted within each head (even channels
  first, then odd ones), which leaves every attention score unchanged;
- GPT-2 has biases everywhere: ours where the model has them (an imported GPT-2), else zeros.

Imported models go back the way they came: grouped-query attention, ``rope_theta``, the MLP width,
the norm epsilon, an untied head, GPT-2's tanh GELU, and the source's own tokenizer.

The tokenizer becomes a ``tokenizers`` JSON that encodes byte for byte as ours: the sentencepiece
BPE through transformers' own sentencepiece conversion (user-defined ``\\n``, byte fallback, no
dummy prefix), a character vocabulary as a one-character-per-token word level model (id 0 for a
character never seen). The tests check both against ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from austen_net.config import ExportConfig
from austen_net.inference import CHECKPOINT_KEYS, PROJECT, load_model, lora_run
from austen_net.lora import peft_config, peft_state, settings_from
from austen_net.model import GPT
from austen_net.pretrained import rope_rows
from austen_net.tokenizer import UNK, BPETokenizer, CharTokenizer, HFTokenizer, Tokenizer
from shared.checkpoint import load_checkpoint
from shared.errors import UserError
from shared.extras import require
from shared.files import atomic_dir, require_new_folder, write_json

LLAMA = ("rope", "rmsnorm", "swiglu")
GPT2 = ("learned", "layernorm", "gelu")


def require_transformers() -> None:
    # protobuf: transformers reads the sentencepiece model through it
    require(("transformers", "safetensors", "google.protobuf"), "austen-net", "export", "export")


def layout_of(model: GPT) -> str:
    c = model.cfg
    layout = (c.pos, c.norm, c.mlp)
    llama_ok = layout == LLAMA and not c.bias
    gpt2_ok = layout == GPT2 and c.tie_weights and c.kv_heads == c.n_head
    if not (llama_ok or gpt2_ok):
        raise UserError(
            f"a model with --pos {c.pos} --norm {c.norm} --mlp {c.mlp} has no standard "
            "equivalent: train with the defaults (--pos rope --norm rmsnorm --mlp swiglu: a Llama) "
            "or with --pos learned --norm layernorm --mlp gelu (a GPT-2) to export"
        )
    return "llama" if layout == LLAMA else "gpt2"


def llama3_scaling(c) -> dict:
    """Llama 3's RoPE scaling as transformers reads it (4.x's ``rope_scaling``; 5.x converts it)."""
    if c.imported.rope_scaling is None:
        return {}
    factor, low, high, original = c.imported.rope_scaling
    scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": low}
    return {
        "rope_scaling": {
            **scaling,
            "high_freq_factor": high,
            "original_max_position_embeddings": original,
        }
    }


def llama_model(model: GPT):
    from transformers import LlamaConfig, LlamaForCausalLM  # optional: the export extra

    c = model.cfg
    hidden = model.blocks[0].mlp.down.in_features
    config = LlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.n_embd,
        intermediate_size=hidden,
        num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head,
        num_key_value_heads=c.kv_heads,
        head_dim=c.head_dim,
        max_position_embeddings=c.block_size,
        rms_norm_eps=model.norm.eps,
        rope_theta=c.imported.rope_theta,
        **llama3_scaling(c),
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=c.tie_weights,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        torch_dtype="float32",
    )
    sd = {"model.embed_tokens.weight": model.tok_emb.weight, "model.norm.weight": model.norm.weight}
    if not c.tie_weights:
        sd["lm_head.weight"] = model.head.weight
    kv = c.kv_heads * c.head_dim
    for i, block in enumerate(model.blocks):
        p = f"model.layers.{i}."
        q, k, v = block.attn.qkv.weight.split([c.n_embd, kv, kv], dim=0)
        up, gate = block.mlp.up.weight.chunk(2, dim=0)
        sd |= {
            p + "input_layernorm.weight": block.norm1.weight,
            p + "post_attention_layernorm.weight": block.norm2.weight,
            p + "self_attn.q_proj.weight": rope_rows(q, c.n_head),
            p + "self_attn.k_proj.weight": rope_rows(k, c.kv_heads),
            p + "self_attn.v_proj.weight": v,
            p + "self_attn.o_proj.weight": block.attn.proj.weight,
            p + "mlp.up_proj.weight": up,
            p + "mlp.gate_proj.weight": gate,
            p + "mlp.down_proj.weight": block.mlp.down.weight,
        }
    return LlamaForCausalLM(config), sd


def gpt2_model(model: GPT):
    from transformers import GPT2Config, GPT2LMHeadModel  # optional: the export extra

    c = model.cfg
    config = GPT2Config(
        vocab_size=c.vocab_size,
        n_positions=c.block_size,
        n_embd=c.n_embd,
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_inner=c.mlp_hidden,
        # exact GELU, as F.gelu, for what we train; GPT-2's own tanh "gelu_new" for an import
        activation_function="gelu_new" if c.imported.gelu == "tanh" else "gelu",
        layer_norm_epsilon=model.norm.eps,
        resid_pdrop=c.dropout,
        embd_pdrop=c.dropout,
        attn_pdrop=0.0,  # we never drop attention probabilities
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        torch_dtype="float32",
    )

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(n)

    def bias(layer: torch.nn.Module) -> torch.Tensor:
        return layer.bias if layer.bias is not None else zeros(layer.weight.shape[0])

    sd = {
        "transformer.wte.weight": model.tok_emb.weight,
        "transformer.wpe.weight": model.pos_emb.weight,
        "transformer.ln_f.weight": model.norm.weight,
        "transformer.ln_f.bias": bias(model.norm),
    }
    for i, block in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        sd |= {
            p + "ln_1.weight": block.norm1.weight,
            p + "ln_1.bias": bias(block.norm1),
            p + "ln_2.weight": block.norm2.weight,
            p + "ln_2.bias": bias(block.norm2),
            p + "attn.c_attn.weight": block.attn.qkv.weight.T,
            p + "attn.c_attn.bias": bias(block.attn.qkv),
            p + "attn.c_proj.weight": block.attn.proj.weight.T,
            p + "attn.c_proj.bias": bias(block.attn.proj),
            p + "mlp.c_fc.weight": block.mlp.up.weight.T,
            p + "mlp.c_fc.bias": bias(block.mlp.up),
            p + "mlp.c_proj.weight": block.mlp.down.weight.T,
            p + "mlp.c_proj.bias": bias(block.mlp.down),
        }
    return GPT2LMHeadModel(config), sd


def hf_tokenizer(tok: Tokenizer):
    """Our tokenizer as a ``transformers`` fast tokenizer that encodes and decodes the same."""
    from tokenizers import Regex, decoders, pre_tokenizers  # optional: the export extra
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    if isinstance(tok, HFTokenizer):  # the source's own, as it came, with its named tokens
        return PreTrainedTokenizerFast(
            tokenizer_object=RustTokenizer.from_str(tok.spec),
            clean_up_tokenization_spaces=False,
            model_max_length=None,
            **tok.special,
        )
    if isinstance(tok, BPETokenizer):
        proto = import_protobuf().ModelProto()
        proto.ParseFromString(tok.proto)
        vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
        rust = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
        unk = proto.trainer_spec.unk_piece
    elif isinstance(tok, CharTokenizer):
        rust = RustTokenizer(WordLevel({c: i for i, c in enumerate(tok.chars)}, unk_token=UNK))
        rust.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        rust.decoder = decoders.Fuse()
        unk = UNK
    else:
        raise UserError(f"a {tok.kind} tokenizer cannot be exported")
    return PreTrainedTokenizerFast(
        tokenizer_object=rust,
        unk_token=unk,
        clean_up_tokenization_spaces=False,
        model_max_length=None,
    )


def model_card(state: dict, checkpoint: Path, layout: str, summary: dict) -> str:
    cfg = state.get("config", {}) or {}
    text = summary.get("text") if isinstance(summary.get("text"), dict) else None
    data = (
        f"your own text: {', '.join(text['files'])} ({text['characters']:,} characters, "
        f"sha256 {text['sha256'][:16]}...)"
        if text
        else "Jane Austen's novels from Project Gutenberg (the austen-net corpus)"
    )
    defaults = {"device", "out", "quiet", "resume", "seed", "precision", "compile", "download"}
    flags = " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in cfg.items()
        if k not in defaults and v not in (None, [], False)
    )
    bpc = summary.get("val_bpc")
    return f"""---
library_name: transformers
pipeline_tag: text-generation
---

# austen-net model ({layout} layout)

A small decoder-only transformer trained with austen-net (our own GPT and sentencepiece
tokenizer) and exported with `austen-net export --format hf`.

- **Data**: {data}
- **Steps**: {int(state.get("step", 0)):,}
- **Validation bits per character**: {bpc if bpc is not None else "not recorded"}
- **Architecture**: {layout}, {state["model_config"]["n_layer"]} layers, \
{state["model_config"]["n_embd"]} wide, {state["model_config"]["n_head"]} heads, context \
{state["model_config"]["block_size"]}, vocabulary {state["model_config"]["vocab_size"]}
- **Checkpoint**: `{checkpoint}`

Trained with:

```bash
austen-net train {flags}
```

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained("THIS_FOLDER")
model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER")
ids = tok("It is a truth", return_tensors="pt").input_ids
print(tok.decode(model.generate(ids, max_new_tokens=100, do_sample=True, top_k=200)[0]))
```
"""


def run_summary(checkpoint: Path) -> dict:
    for folder in (checkpoint.parent.parent, checkpoint.parent):
        path = folder / "summary.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                return data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                return {}
    return {}


def export_hf(checkpoint: Path, out: Path) -> dict:
    require_transformers()
    from transformers import GenerationConfig  # optional: the export extra
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one JSON line is the command's output

    require_new_folder(out)
    model, tok, state = load_model(checkpoint, torch.device("cpu"))
    layout = layout_of(model)
    hf, weights = (llama_model if layout == "llama" else gpt2_model)(model)
    with torch.no_grad():
        missing, unexpected = hf.load_state_dict(
            {k: v.detach().clone().contiguous() for k, v in weights.items()}, strict=False
        )
    missing = [k for k in missing if k != "lm_head.weight" and not k.endswith(".attn.bias")]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    hf.eval()
    with atomic_dir(out) as staging:  # a failed export leaves no half-written folder
        hf.save_pretrained(staging, safe_serialization=True)
        hf_tokenizer(tok).save_pretrained(staging)
        GenerationConfig(
            do_sample=True, temperature=0.8, top_k=200, max_new_tokens=500
        ).save_pretrained(staging)
        summary = run_summary(Path(checkpoint))
        (staging / "README.md").write_text(model_card(state, checkpoint, layout, summary))
    return {
        "out": str(out),
        "format": "hf",
        "architecture": type(hf).__name__,
        "parameters_m": round(sum(p.numel() for p in hf.parameters()) / 1e6, 2),
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
    }


def export_peft(checkpoint: Path, out: Path) -> dict:
    """A LoRA run's adapters as peft writes them: ``adapter_config.json`` and
    ``adapter_model.safetensors``, loadable by ``peft.PeftModel.from_pretrained`` (and vLLM)
    onto the base model the run started from (``base_model_name_or_path``)."""
    require_transformers()
    from safetensors.torch import save_file  # optional: the export extra

    require_new_folder(out)
    state = load_checkpoint(checkpoint, project=PROJECT, required=CHECKPOINT_KEYS)
    if not lora_run(state):
        raise UserError(
            f"{checkpoint} is a full model, not LoRA adapters: export it with --format hf "
            "(train with --lora-rank to get adapters)"
        )
    model, _, state = load_model(checkpoint, torch.device("cpu"), merge=False)
    settings = settings_from(state["config"])
    tensors = peft_state(model)
    with atomic_dir(out) as staging:
        write_json(
            staging / "adapter_config.json", peft_config(settings, state["config"]["init_from"])
        )
        save_file(tensors, str(staging / "adapter_model.safetensors"))
    return {
        "out": str(out),
        "format": "peft",
        "base_model": state["config"]["init_from"],
        "rank": settings.rank,
        "targets": list(settings.targets),
        "adapter_parameters_m": round(sum(t.numel() for t in tensors.values()) / 1e6, 4),
    }


def export_command(cfg: ExportConfig) -> int:
    """``austen-net export``: one JSON line saying what was written."""
    export = export_peft if cfg.format == "peft" else export_hf
    print(json.dumps(export(cfg.checkpoint, cfg.out)))
    return 0
