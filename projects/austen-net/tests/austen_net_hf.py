"""Random GPT-2 and Llama models in transformers' layout (a byte-level and a metaspace BPE
tokenizer trained on Austen-like text): what ``austen-net import`` reads, built in the test, no
download."""

from pathlib import Path

import torch
from austen_net_data import austen_like

PARAGRAPH = (
    "Sir Walter Elliot, of Kellynch Hall,\nin Somersetshire — a café, naïve 😀 was a man who,"
    "\n\nfor his own amusement, never took up any book but the Baronetage."
)


def corpus_text() -> str:
    return austen_like(300, seed=3).replace("\r\n", "\n") + "\n\n" + PARAGRAPH


def byte_level_tokenizer(text: str):
    """GPT-2's kind: byte-level BPE."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )


def metaspace_tokenizer(text: str):
    """A Llama's kind: BPE over '▁'-joined words with byte fallback for unseen characters."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first", split=False
    )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    special = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=special, show_progress=False)
    tok.train_from_iterator([text], trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def perturbed(model):
    """Random weights everywhere, biases and norms too (transformers starts those at 0 and 1,
    which would hide a bias or norm weight mapped to the wrong place)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def gpt2_folder(folder: Path) -> Path:
    import transformers

    tok = byte_level_tokenizer(corpus_text())
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(tok),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=4,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    perturbed(transformers.GPT2LMHeadModel(config)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def llama_folder(folder: Path, **changes) -> Path:
    import transformers

    tok = metaspace_tokenizer(corpus_text())
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        **{"rope_theta": 100000.0, "tie_word_embeddings": False, **changes},
    )
    perturbed(transformers.LlamaForCausalLM(config)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def llama3_folder(folder: Path) -> Path:
    """Llama 3.2's kind: "llama3" RoPE scaling (an original context of 32 positions, so that
    every regime of the scaling shows within 128), tied embeddings, rope_theta 500000."""
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0}
    scaling |= {"high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    return llama_folder(folder, rope_scaling=scaling, rope_theta=500000.0, tie_word_embeddings=True)
