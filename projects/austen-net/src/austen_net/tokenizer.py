"""Tokenizers: sentencepiece BPE (default), characters, or a pretrained model's own (``hf``: a
transformers ``tokenizer.json``, read with the ``tokenizers`` library), all stored in a checkpoint.

The BPE model keeps text byte-exact: identity normalisation, no collapsing of spaces, no dummy
prefix, newlines as their own symbol, and byte fallback so any character (outside the training
text too) round-trips. It is trained on the training split only and cached by a hash of that text
and the options.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
from collections import Counter

import numpy as np
import sentencepiece as spm
import torch

from austen_net import PROJECT
from shared.errors import UserError
from shared.extras import require
from shared.files import atomic_path, cache_root
from shared.text import valid_text

log = logging.getLogger(__name__)

MAX_TOKENIZER_BYTES = 64 << 20  # a stored tokenizer (Llama 3's tokenizer.json: 9 MB)

UNK = "\ufffd"


class Tokenizer:
    kind: str
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as an int32 array, a piece at a time: a 200 MB text never becomes a Python
        list of 200 million ints."""
        parts = [np.asarray(self.encode(piece), dtype=np.int32) for piece in pieces(text)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)

    def state(self) -> dict:
        raise NotImplementedError

    def unknown_characters(self, text: str) -> list[str]:
        """Characters of ``text`` this tokenizer can only map to its unknown token."""
        raise NotImplementedError

    @staticmethod
    def from_state(state: dict) -> Tokenizer:
        if state["kind"] == "bpe":
            return BPETokenizer(state["model"].numpy().tobytes())
        if state["kind"] == "char":
            return CharTokenizer(state["chars"])
        if state["kind"] == "hf":
            return HFTokenizer(state["json"].numpy().tobytes().decode(), state.get("special"))
        raise UserError(f"unknown tokenizer kind {state['kind']!r} in checkpoint")


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, model_proto: bytes) -> None:
        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(valid_text(text))  # sentencepiece cannot take a lone surrogate

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([int(i) for i in ids])

    def state(self) -> dict:
        return {"kind": "bpe", "model": torch.frombuffer(bytearray(self.proto), dtype=torch.uint8)}

    def unknown_characters(self, text: str) -> list[str]:
        sp = self.sp
        if sp.piece_to_id("<0x00>") != sp.unk_id():  # byte fallback: every character is encodable
            return []
        return sorted({c for c in set(text) if sp.unk_id() in self.encode(c)})


class HFTokenizer(Tokenizer):
    """A pretrained model's tokenizer (GPT-2's byte-level BPE, a Llama's): its ``tokenizer.json``
    verbatim, encoded without special tokens (a text is text, as our other tokenizers read it).
    ``special`` keeps the source's named tokens (``eos_token`` ...) for the export."""

    kind = "hf"

    def __init__(self, spec: str, special: dict | None = None) -> None:
        require(("tokenizers",), "austen-net", "pretrained", "a pretrained model's tokenizer")
        from tokenizers import Tokenizer as RustTokenizer  # optional: the pretrained extra

        self.spec, self.special = spec, dict(special or {})
        self.rust = RustTokenizer.from_str(spec)
        self.vocab_size = self.rust.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.rust.encode(valid_text(text), add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.rust.decode([int(i) for i in ids], skip_special_tokens=False)

    def state(self) -> dict:
        data = torch.frombuffer(bytearray(self.spec.encode()), dtype=torch.uint8)
        return {"kind": "hf", "json": data, "special": self.special}

    def unknown_characters(self, text: str) -> list[str]:
        """None for a byte-level BPE (GPT-2) or one with byte fallback (a Llama's): their unknown
        token, if they name one, is never produced; otherwise the characters that produce it."""
        unk = self.special.get("unk_token")
        unk_id = self.rust.token_to_id(unk) if isinstance(unk, str) else None
        if unk_id is None:
            return []
        return sorted({c for c in set(text) if unk_id in self.encode(c)})


class CharTokenizer(Tokenizer):
    """One id per character seen in training; id 0 stands for any unseen character."""

    kind = "char"

    def __init__(self, chars: str) -> None:
        self.chars = chars if chars.startswith(UNK) else UNK + chars.replace(UNK, "")
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, 0) for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` through a lookup table of code points, a piece at a time (a 200 MB text in
        seconds, not minutes)."""
        if not hasattr(self, "table"):
            self.table = np.zeros(0x110000, dtype=np.int32)  # unseen characters read as 0
            self.table[[ord(c) for c in self.chars]] = np.arange(len(self.chars), dtype=np.int32)
        out = np.empty(len(text), dtype=np.int32)
        for start in range(0, len(text), PIECE_CHARS):
            piece = text[start : start + PIECE_CHARS].encode("utf-32-le", "surrogatepass")
            out[start : start + PIECE_CHARS] = self.table[np.frombuffer(piece, dtype=np.uint32)]
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def state(self) -> dict:
        return {"kind": "char", "chars": self.chars}

    def unknown_characters(self, text: str) -> list[str]:
        return sorted({c for c in text if c not in self.index})


def bpe_options(vocab_size: int) -> dict:
    return dict(
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        user_defined_symbols=["\n"],
        allow_whitespace_only_pieces=True,
        split_digits=True,
        max_sentence_length=1 << 16,
        unk_surface=UNK,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        unk_id=0,
    )


PIECE_CHARS = 1 << 22  # texts are encoded this many characters at a time (4M)
MAX_SENTENCE_CHARS = 4096  # the BPE trainer gets paragraphs, longer ones cut at a space
BPE_SAMPLE_CHARS = 20_000_000  # the trainer learns from at most this much text (evenly spread)


def pieces(text: str, size: int = PIECE_CHARS):
    """``text`` in consecutive pieces of about ``size`` characters, each ending just after a line
    break where one is near (the BPE keeps a newline as its own symbol, so cutting there gives the
    same ids as encoding the whole), else at ``size``."""
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            newline = text.rfind("\n", start + size // 2, end)
            end = newline + 1 if newline >= 0 else end
        yield text[start:end]
        start = end


NON_SPACE = re.compile(r"\S")


def paragraphs(texts: list[str]):
    """The trainer's sentences: paragraphs, any longer than ``MAX_SENTENCE_CHARS`` cut at spaces
    (a text written as one 200 MB line is thousands of sentences, not one it must drop). From a
    text over ``BPE_SAMPLE_CHARS`` (five Austen corpora), an evenly spread share of them: the
    pieces a BPE learns settle long before, and sentencepiece's time grows with its input."""
    total = sum(map(len, texts))
    stride = max(1, math.ceil(total / BPE_SAMPLE_CHARS))
    n = 0
    for text in texts:
        for para in text.split("\n\n"):
            if not para.strip():
                continue
            para += "\n\n"
            start = 0  # offsets, not para[cut:]: copying the rest of a 200 MB line each time
            while NON_SPACE.search(para, start):  # is quadratic
                end = len(para)
                if end - start > MAX_SENTENCE_CHARS:
                    limit = start + MAX_SENTENCE_CHARS
                    end = para.rfind(" ", start + MAX_SENTENCE_CHARS // 2, limit)
                    end = end + 1 if end >= 0 else limit
                if n % stride == 0:
                    yield para[start:end]
                n += 1
                start = end


def train_bpe(texts: list[str], vocab_size: int, quiet: bool = False) -> BPETokenizer:
    """A BPE of ``vocab_size`` pieces; on a text too small for that many, the most it supports
    (sentencepiece's soft limit), with a message."""
    try:
        return BPETokenizer(_sentencepiece(texts, vocab_size, hard_limit=True))
    except RuntimeError as exc:
        if "Vocabulary size too high" not in str(exc):
            raise UserError(
                f"sentencepiece could not train a {vocab_size}-token vocabulary: {exc}"
            ) from exc
    tok = BPETokenizer(_sentencepiece(texts, vocab_size, hard_limit=False))
    log.info(
        f"the text supports a vocabulary of {tok.vocab_size} BPE pieces, not {vocab_size}: "
        f"using {tok.vocab_size} (--vocab-size sets the most)"
    )
    return tok


def _sentencepiece(texts: list[str], vocab_size: int, hard_limit: bool) -> bytes:
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=paragraphs(texts),
            model_writer=buf,
            minloglevel=2,
            num_threads=2,
            hard_vocab_limit=hard_limit,
            **bpe_options(vocab_size),
        )
    except RuntimeError:
        if hard_limit:
            raise
        raise UserError("sentencepiece could not train a vocabulary on this text") from None
    return buf.getvalue()


def cache_key(texts: list[str], kind: str, vocab_size: int) -> str:
    h = hashlib.sha256(f"{kind}:{vocab_size}:{sorted(bpe_options(vocab_size).items())}".encode())
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


MAX_CHARS = 4096  # --tokenizer char keeps at most this many characters (the unknown one among them)


def char_tokenizer(texts: list[str], quiet: bool = False) -> CharTokenizer:
    """One id per character of the training text, the most frequent ``MAX_CHARS - 1`` of them
    when there are more (a text of 100,001 distinct characters took 5.7 GB for a tiny model):
    the rest read as the unknown character, with a message saying how much of the text that is."""
    counts = Counter()
    for text in texts:
        counts.update(text)
    counts.pop(UNK, None)
    if len(counts) < MAX_CHARS:
        return CharTokenizer("".join(sorted(counts)))
    kept = sorted(counts, key=lambda c: (-counts[c], c))[: MAX_CHARS - 1]
    dropped = sum(counts.values()) - sum(counts[c] for c in kept)
    share = dropped / max(sum(counts.values()), 1)
    log.info(
        f"--tokenizer char: {len(counts):,} distinct characters; the {len(kept):,} most frequent "
        f"kept, the rest ({share:.2%} of the text) read as the unknown character"
    )
    return CharTokenizer("".join(sorted(kept)))


def build_tokenizer(texts: list[str], kind: str, vocab_size: int, quiet: bool = False) -> Tokenizer:
    """The tokenizer for ``texts`` (the training split): characters, or a BPE trained on them (from
    ``<data root>/cache/austen-net/tokenizers`` when the same one was trained before)."""
    if kind == "char":
        return char_tokenizer(texts, quiet)
    key = cache_key(texts, kind, vocab_size)
    path = cache_root(PROJECT) / "tokenizers" / f"bpe-{vocab_size}-{key}.model"
    if path.is_file():
        return BPETokenizer(path.read_bytes())
    log.info(f"training a {vocab_size}-token sentencepiece BPE on the training split")
    tok = train_bpe(texts, vocab_size, quiet)
    with atomic_path(path) as tmp:
        tmp.write_bytes(tok.proto)
    return tok
