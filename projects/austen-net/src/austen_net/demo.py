"""`austen-net demo`: text that streams in as the model writes it, and a scorer in bits/char.

Generation runs the same KV-cached sampler as `austen-net generate` (temperature, top-k, top-p);
the page updates after every token and shows the speed. The second tab scores pasted text with
the same code as `austen-net evaluate --text` (lower bits per character: more Austen-like).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch

from austen_net.config import DemoConfig, GenerateConfig
from austen_net.decode import compiled_decoder, generate
from austen_net.generate import StreamDecoder
from austen_net.inference import PROJECT, bpc_of_texts, load_model
from austen_net.tokenizer import Tokenizer
from austen_net.weights import choose_weights, chosen_kernel
from shared.cli import DemoOptions, checked_as
from shared.demo import find_run, import_gradio, model_card, refuse, serve
from shared.device import select_device
from shared.errors import UserError
from shared.files import cache_root
from shared.text import valid_text

MAX_PROMPT_CHARS = 2000
MAX_SCORE_CHARS = 200_000


def newlines(text: str) -> str:
    """Line ends as the corpus has them (the loader turns \\r\\n and \\r into \\n)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check_text(tok: Tokenizer, text: str, what: str, limit: int) -> None:
    if len(text) > limit:
        raise UserError(f"the {what} has {len(text):,} characters; the limit is {limit:,}")
    unknown = tok.unknown_characters(text)
    if unknown:
        shown = " ".join(repr(c) for c in unknown[:8])
        raise UserError(
            f"the {what} holds character(s) never seen in training ({shown}): the model cannot "
            "read them; remove them or use plain English text"
        )


class Writer:
    max_tokens = DemoConfig.max_tokens  # the most one generation may ask for (--max-tokens)

    def __init__(self, checkpoint: Path, device: torch.device, weights: str = "fp32") -> None:
        if weights == "auto":
            weights = choose_weights(checkpoint, device)
        self.model, self.tok, self.state = load_model(checkpoint, device, weights)
        self.model.eval()
        self.device = device
        self.step = None
        if device.type == "cuda":  # compiled once, before the page is served: it pays on a GPU
            kernel = chosen_kernel(checkpoint, device, weights)  # (on a CPU half a minute:
            self.step = compiled_decoder(self.model, kernel=kernel)  # eager there)
            warm = torch.zeros(1, 1, dtype=torch.long, device=device)
            for _ in generate(self.model, warm, 2, temperature=0, step=self.step):
                pass

    def stream(
        self,
        prompt: str,
        tokens: int,
        temperature: float,
        top_k: int,
        top_p: float | None,
        seed: int | None = None,
    ) -> Iterator[tuple[str, float]]:
        """(text so far, tokens per second) after every generated token. Every value is checked
        with the CLI's rules: the page's sliders do not bind a client that calls the API."""
        if not isinstance(prompt, str):
            raise UserError("the prompt must be text")
        prompt = newlines(valid_text(prompt))  # the page gets back valid text only
        check_text(self.tok, prompt, "prompt", MAX_PROMPT_CHARS)
        tokens = checked_as(GenerateConfig, "max_new_tokens", tokens, "length")
        if tokens > self.max_tokens:
            raise UserError(f"length {tokens:,} is above --max-tokens {self.max_tokens:,}")
        temperature = checked_as(GenerateConfig, "temperature", temperature, "temperature")
        top_k = checked_as(GenerateConfig, "top_k", top_k, "top-k")
        if top_p is not None:
            top_p = checked_as(GenerateConfig, "top_p", top_p, "top-p")
        if seed is not None:
            seed = checked_as(GenerateConfig, "seed", seed, "seed")
        generator = torch.Generator()
        generator.manual_seed(seed) if seed is not None else generator.seed()
        ids = self.tok.encode(prompt) or self.tok.encode("\n")
        idx = torch.tensor([ids], dtype=torch.long, device=self.device)
        decoder, text = StreamDecoder(self.tok), prompt
        start = time.perf_counter()
        for n, token in enumerate(
            generate(
                self.model,
                idx,
                tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                generator=generator,
                step=self.step,
            ),
            start=1,
        ):
            text += decoder.push(int(token[0]))
            yield text, n / (time.perf_counter() - start)

    def score(self, text: str) -> dict:
        text = newlines(valid_text(text))
        check_text(self.tok, text, "text", MAX_SCORE_CHARS)
        if len(text.strip()) < 2:
            raise UserError("paste some text to score (at least a few words)")
        return bpc_of_texts(self.model, self.tok, [text], 8, self.device, "auto")


def score_sentence(result: dict, val_bpc: float | None) -> str:
    """A score as a reader takes it in: the number, what it means, what to compare it with."""
    text = (
        f"**{result['bpc']:.3f} bits per character** over {result['chars']:,} characters "
        f"({result['tokens']:,} tokens). Lower means the text is more like what the model "
        "learned from"
    )
    if val_bpc is not None:
        text += f"; the model's own validation text scores {val_bpc:.3f}"
    return text + "."


def build_app(opts: DemoConfig):
    """Two tabs: write from a prompt (streamed), score a pasted text in bits per character."""
    served = find_run(PROJECT, opts, train_command="austen-net train")
    gr = import_gradio(cache_root(PROJECT) / "demo-uploads")
    device = select_device(opts.device)
    writer = Writer(served.checkpoint, device, opts.weights)
    writer.max_tokens = opts.max_tokens
    cfg = writer.model.cfg
    name, trained_on = text_names(writer.state)
    with gr.Blocks(title="austen-net demo", analytics_enabled=False) as app:
        model_card(
            gr,
            f"austen-net: write like {name}",
            f"A {cfg.n_layer}-layer decoder-only transformer ({cfg.n_embd} wide, "
            f"{writer.tok.kind} tokenizer of {writer.tok.vocab_size} tokens, context "
            f"{cfg.block_size}) trained on {trained_on}.",
            served,
            str(device),
            ["preset", "params_m", "val_bpc", "best_step", "steps", "train_seconds"],
        )
        with gr.Tab("Write"):
            write_tab(gr, opts, writer)
        with gr.Tab("Score"):
            score_tab(gr, opts, writer, served.summary.get("val_bpc"))
    return app


AUSTEN_PROMPT = "It is a truth universally acknowledged"


def text_names(state: dict) -> tuple[str, str]:
    """(whose style, what it was trained on) from the checkpoint: Jane Austen for the corpus,
    else the names of the run's own text files."""
    text = state.get("text")
    if not text:
        return "Jane Austen", "her novels"
    names = [Path(f).stem for f in text.get("files", [])] or ["your text"]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return shown, f"{shown} ({text.get('characters', 0):,} characters)"


def default_prompt(state: dict) -> str:
    """The opening of the run's validation text (recorded at training), else Austen's."""
    prompt = state.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return prompt
    return AUSTEN_PROMPT if not state.get("text") else ""


def write_tab(gr, opts: DemoOptions, writer: Writer) -> None:
    def write(prompt, tokens, temperature, top_k, top_p, seed):
        # the page's "off" values: top-p 1 and seed -1 (anything else is checked by stream)
        top_p = None if isinstance(top_p, (int, float)) and top_p == 1 else top_p
        seed = None if isinstance(seed, (int, float)) and seed == -1 else seed
        try:
            text, speed, n = prompt or "", 0.0, 0
            stream = writer.stream(prompt or "", tokens, temperature, top_k, top_p, seed)
            for text, speed in stream:
                n += 1
                yield text, f"{speed:.1f} tokens/s"
            yield text, f"done: {n} tokens, {speed:.1f} tokens/s"  # the page can tell it ended
        except UserError as exc:
            raise refuse(gr, str(exc), opts.debug) from exc

    prompt = gr.Textbox(default_prompt(writer.state), label="prompt", lines=2)
    with gr.Row():
        tokens = gr.Slider(1, 1000, value=200, step=1, label="length (tokens)")
        temperature = gr.Slider(0, 2, value=0.8, step=0.05, label="temperature")
        top_k = gr.Slider(0, 500, value=200, step=1, label="top-k (0: off)")
        top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="top-p (1: off)")
        seed = gr.Number(-1, label="seed (-1: random)", precision=0)
    button = gr.Button("Write", variant="primary")
    text = gr.Textbox(label="text", lines=14, elem_id="story")
    speed = gr.Textbox(label="speed", elem_id="speed")
    button.click(
        write, [prompt, tokens, temperature, top_k, top_p, seed], [text, speed], api_name="write"
    )


def score_tab(gr, opts: DemoOptions, writer: Writer, val_bpc: float | None) -> None:
    def score(text):
        try:
            if not isinstance(text, (str, type(None))):
                raise UserError("paste text to score")
            result = writer.score(text or "")
        except UserError as exc:
            raise refuse(gr, str(exc), opts.debug) from exc
        return score_sentence(result, val_bpc), result["bpc"]

    pasted = gr.Textbox(label="text to score", lines=8)
    sentence = gr.Markdown(elem_id="scored")
    bpc = gr.Number(label="bits per character", elem_id="bpc", interactive=False)
    gr.Button("Score", variant="primary").click(score, pasted, [sentence, bpc], api_name="score")


def run_demo(opts: DemoConfig) -> int:
    return serve(build_app(opts), opts)
