"""`intro-nn demo`: draw a digit for the MNIST network, fill a loan form for the loan MLP.

Both models come from run folders of `intro-nn train` (by default the newest run holding each).
A drawing is turned into what MNIST digits look like before the network sees it: the ink cropped,
scaled to fit 20x20 and centred by its centre of mass in 28x28 (how the data set was made), and the
page shows that 28x28 image beside the ten probabilities.
"""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from intro_nn.inference import (  # noqa: F401
    PROJECT,
    DigitModel,
    has_mnist,
    ink,
    open_checked,
    to_mnist,
)
from intro_nn.loan import MODEL_FILE, load_loan_model
from intro_nn.loan_data import FEATURES, NUMERIC, PURPOSES, validate_loans
from shared.cli import DemoOptions, checked_number
from shared.demo import ServedModel, find_run, import_gradio, model_card, refuse, serve
from shared.device import select_device
from shared.errors import UserError
from shared.files import cache_root

# (label, default, lowest, highest) per numeric column: defaults are the medians of the real
# table and the bounds its range, a little widened; values outside are refused, not extrapolated.
LOAN_FIELDS: dict[str, tuple[str, float, float, float]] = {
    "credit.policy": ("meets LendingClub's credit policy (1 yes, 0 no)", 1, 0, 1),
    "int.rate": ("interest rate (0.12 = 12%)", 0.1221, 0.0, 0.35),
    "installment": ("monthly installment ($)", 268.95, 0.0, 2000.0),
    "log.annual.inc": ("natural log of annual income", 10.93, 5.0, 16.0),
    "dti": ("debt-to-income ratio (%)", 12.67, 0.0, 60.0),
    "fico": ("FICO score", 707, 300, 850),
    "days.with.cr.line": ("days with a credit line", 4140, 0, 30000),
    "revol.bal": ("revolving balance ($)", 8596, 0, 2_000_000),
    "revol.util": ("revolving line utilisation (%)", 46.3, 0.0, 150.0),
    "inq.last.6mths": ("credit inquiries, last 6 months", 1, 0, 50),
    "delinq.2yrs": ("delinquencies, last 2 years", 0, 0, 20),
    "pub.rec": ("derogatory public records", 0, 0, 10),
}
assert tuple(LOAN_FIELDS) == NUMERIC

DAYS_PER_YEAR = 365.25
# The form asks in the units people know; each field is converted to its column behind the scenes.
# (column, label, default, lowest, highest, to the column's unit): defaults and bounds are
# LOAN_FIELDS' in these units.
HUMAN_FIELDS: list[tuple[str, str, float, float, float, Any]] = [
    ("credit.policy", "meets LendingClub's credit policy (1 yes, 0 no)", 1, 0, 1, float),
    ("int.rate", "interest rate (%)", 12.21, 0.0, 35.0, lambda v: v / 100),
    ("installment", "monthly installment ($)", 268.95, 0.0, 2000.0, float),
    ("log.annual.inc", "annual income ($)", 55_850, 150, 8_800_000, math.log),
    ("dti", "debt-to-income ratio (%)", 12.67, 0.0, 60.0, float),
    ("fico", "FICO score", 707, 300, 850, float),
    (
        "days.with.cr.line",
        "years with a credit line",
        11.3,
        0.0,
        82.0,
        lambda v: v * DAYS_PER_YEAR,
    ),
    ("revol.bal", "revolving balance ($)", 8596, 0, 2_000_000, float),
    ("revol.util", "revolving line utilisation (%)", 46.3, 0.0, 150.0, float),
    ("inq.last.6mths", "credit inquiries, last 6 months", 1, 0, 50, float),
    ("delinq.2yrs", "delinquencies, last 2 years", 0, 0, 20, float),
    ("pub.rec", "derogatory public records", 0, 0, 10, float),
]
assert tuple(f[0] for f in HUMAN_FIELDS) == NUMERIC


def from_human(values: list[Any]) -> dict[str, float]:
    """The form's values (human units, in HUMAN_FIELDS' order) as the table's columns."""
    out = {}
    for (col, label, _, lo, hi, convert), value in zip(HUMAN_FIELDS, values, strict=True):
        if value is None or value == "":
            raise UserError(f"{label} needs a number")
        value = checked_number(value, label, float)
        if not lo <= value <= hi:
            raise UserError(f"{label} must lie between {lo:,g} and {hi:,g}, not {value:,g}")
        out[col] = float(convert(value))
    return out


def loan_row(purpose: str, values: dict[str, float]) -> pd.DataFrame:
    """One validated row of the loan table from the form's fields (range-checked)."""
    if purpose not in PURPOSES:
        raise UserError(f"purpose must be one of {', '.join(PURPOSES)}")
    for col, value in values.items():
        label, _, lo, hi = LOAN_FIELDS[col]
        if value is None or value == "":
            raise UserError(f"{col} ({label}) needs a number")
        value = values[col] = checked_number(value, f"{col} ({label})", float)
        if not lo <= value <= hi:
            raise UserError(f"{col} ({label}) must lie between {lo:g} and {hi:g}, not {value:g}")
    row = pd.DataFrame([{"purpose": purpose, **values}])
    return validate_loans(row, "the form", require_target=False).loc[:, list(FEATURES)]


def loan_decision(bundle: dict, row: pd.DataFrame) -> dict[str, Any]:
    p = float(bundle["pipeline"].predict_proba(row)[0, 1])
    flagged = p >= bundle["threshold"]
    return {
        "probability_not_fully_paid": round(p, 4),
        "threshold": round(float(bundle["threshold"]), 4),
        "decision": "flag for review (likely not fully paid)" if flagged else "looks fine",
    }


def what_would_change(bundle: dict, row: pd.DataFrame) -> str | None:
    """The smallest change of the FICO score (steps of 5) or the interest rate (steps of 0.25
    points) that flips the decision, as a sentence; None if neither does within its range."""
    threshold = float(bundle["threshold"])
    flagged = float(bundle["pipeline"].predict_proba(row)[0, 1]) >= threshold
    found = []
    for col, step, lo, hi, show in (
        ("fico", 5.0, 300.0, 850.0, lambda v: f"a FICO score of {v:.0f}"),
        ("int.rate", 0.0025, 0.0, 0.35, lambda v: f"an interest rate of {100 * v:.2f}%"),
    ):
        now = float(row[col].iloc[0])
        candidates = sorted(
            (v for v in np.arange(lo, hi + step / 2, step) if abs(v - now) > 1e-9),
            key=lambda v: abs(v - now),
        )
        trial = pd.concat([row] * len(candidates), ignore_index=True)
        trial[col] = candidates
        probs = bundle["pipeline"].predict_proba(trial)[:, 1]
        flips = [v for v, q in zip(candidates, probs, strict=True) if (q >= threshold) != flagged]
        if flips:
            found.append(show(flips[0]))
    if not found:
        return None
    return " or ".join(found) + " (the rest unchanged) would change the decision"


def loan_answer(bundle: dict, row: pd.DataFrame) -> tuple[str, dict[str, float], dict]:
    """The page's answer: a sentence, a gauge (the two outcomes' probabilities), the numbers."""
    d = loan_decision(bundle, row)
    p, t = d["probability_not_fully_paid"], d["threshold"]
    verdict = "**Flag for review**" if p >= t else "**Looks fine**"
    side = "at or above" if p >= t else "below"
    text = (
        f"{verdict}: a {100 * p:.1f}% chance that this loan is not fully paid, {side} the "
        f"{100 * t:.1f}% threshold chosen on the training folds."
    )
    change = what_would_change(bundle, row)
    if change:
        text += f" {change[0].upper()}{change[1:]}."
    return text, {"not fully paid": p, "fully paid": round(1 - p, 4)}, d


def has_loan(run: Path) -> bool:
    return (run / MODEL_FILE).is_file()


MAX_DRAWING_BYTES = 5 << 20  # a sketchpad drawing is a PNG of tens of KB

# The sketchpad opens with no tool chosen ("select the draw tool to start"): pick the brush as soon
# as the page has drawn it, so that the first stroke draws.
PICK_BRUSH = """() => {
  const started = Date.now();
  const pick = () => {
    const brush = document.querySelector('#pad [aria-label="Brush"], #pad [title="Brush"]');
    if (brush) { brush.click(); return; }
    if (Date.now() - started < 60000) setTimeout(pick, 100);
  };
  pick();
}"""


def find_models(opts: DemoOptions) -> tuple[ServedModel | None, ServedModel | None]:
    """The MNIST network (``--checkpoint``, ``--run`` or the newest run holding one) and the loan
    model (``--loan-run``, ``--run`` or the newest run holding one): either may be absent, not
    both. An MNIST run and a loan run are two folders: ``--run A --loan-run B`` serves both."""
    mnist = find_part(opts, has_mnist, "intro-nn train mnist")
    loan_run = getattr(opts, "loan_run", None)
    loan_opts = replace(opts, checkpoint=None, run=loan_run or opts.run)
    if opts.checkpoint is not None and loan_run is None:
        loan_opts = replace(loan_opts, run=None)  # --checkpoint names the digits model only
    loan = find_part(loan_opts, has_loan, "intro-nn train loan", required=loan_run is not None)
    if mnist is None and loan is None:
        where = f"--run {opts.run}" if opts.run else "the runs folder"
        raise UserError(
            f"no trained intro-nn model in {where}: make one with 'intro-nn train' "
            "(both), 'intro-nn train mnist' or 'intro-nn train loan'"
        )
    return mnist, loan


def find_part(opts: DemoOptions, has, command: str, required: bool = False) -> ServedModel | None:
    """One part's model, or None where there is none (an error only where a flag named it)."""
    try:
        return find_run(PROJECT, opts, train_command=command, has=has)
    except UserError:
        if required or (opts.checkpoint is not None and has is has_mnist):
            raise
        return None


def build_app(opts: DemoOptions):
    """Two tabs: draw a digit for the MNIST network, describe a loan for the loan MLP."""
    mnist, loan = find_models(opts)
    tidy_summaries(mnist, loan)
    gr = import_gradio(cache_root(PROJECT) / "demo-uploads")
    device = select_device(opts.device)
    digits = DigitModel(mnist.checkpoint, device) if mnist else None
    bundle = load_loan_model(loan.run) if loan else None
    with gr.Blocks(title="intro-nn demo", analytics_enabled=False) as app:
        with gr.Tab("Draw a digit"):
            digit_tab(gr, opts, mnist, digits, str(device))
        with gr.Tab("Loan risk"):
            loan_tab(gr, opts, loan, bundle)
    return app


def tidy_summaries(mnist: ServedModel | None, loan: ServedModel | None) -> None:
    """`intro-nn train` (both parts) nests each part's summary under its name; the loan card
    shows the three models' ranking scores."""
    if mnist:
        mnist.summary = mnist.summary.get("mnist", mnist.summary)
    if loan:
        part = loan.summary.get("loan", loan.summary)
        loan.summary = {
            f"{model} {key}": value
            for model in ("mlp", "logreg", "majority")
            for key, value in (part.get(model) or {}).items()
            if key in ("roc_auc", "pr_auc", "balanced_accuracy")
        }


def pixels_checked(gr, pad, debug: bool):
    """The sketchpad's own decoding, after a look at each image's header: a client can post any
    PNG in place of a drawing, and a 13,000 x 13,000 one (726 KB) took 6.6 GB to decode."""
    decode = pad.preprocess

    def checked(payload):
        if payload is not None:
            parts = pad.blob_storage.get(payload.id) if payload.id is not None else payload
            for part in [parts.background, *(parts.layers or []), parts.composite] if parts else []:
                if part is None:
                    continue
                source = (
                    io.BytesIO(part) if isinstance(part, bytes) else getattr(part, "path", None)
                )
                if source is None:
                    continue
                try:
                    open_checked(source, "the drawing").close()
                except UserError as exc:
                    raise refuse(gr, str(exc), debug) from None
                except (OSError, ValueError, SyntaxError):
                    raise refuse(gr, "the drawing is not an image", debug) from None
        return decode(payload)

    return checked


def digit_tab(gr, opts: DemoOptions, mnist, digits: DigitModel | None, device: str) -> None:
    def guess(drawing):
        if digits is None:
            raise refuse(gr, "no MNIST model: run 'intro-nn train mnist' first", opts.debug)
        image = (drawing or {}).get("composite") if isinstance(drawing, dict) else drawing
        if image is None:
            raise refuse(gr, "the canvas is empty: draw a digit first", opts.debug)
        try:
            digit = to_mnist(image)
        except UserError as exc:
            raise refuse(gr, str(exc), opts.debug) from exc
        return digits.probabilities(digit), np.kron(digit, np.ones((8, 8), np.uint8))

    def live_guess(drawing):
        """Guess while the user draws: a canvas with too little ink yet keeps the last answer."""
        image = (drawing or {}).get("composite") if isinstance(drawing, dict) else drawing
        if digits is None or image is None or (ink(image) > 0.1).sum() < 4:
            return gr.skip(), gr.skip()
        return guess(drawing)

    if mnist:
        model_card(
            gr,
            f"MNIST {digits.name.upper()}",
            "Draw a digit; the network sees the 28x28 image on the right.",
            mnist,
            device,
            ["test_accuracy", "val_accuracy", "epochs", "n_train"],
        )
    else:
        gr.Markdown("No MNIST model yet: run `intro-nn train mnist`.")
    with gr.Row():
        pad = gr.Sketchpad(label="draw here", type="numpy", canvas_size=(280, 280), elem_id="pad")
        pad.preprocess = pixels_checked(gr, pad, opts.debug)
        with gr.Column():
            probs = gr.Label(num_top_classes=10, label="probabilities", elem_id="probs")
            seen = gr.Image(label="what the network saw (28x28, enlarged)", image_mode="L")
    gr.Button("Guess", variant="primary").click(guess, pad, [probs, seen], api_name="digit")
    pad.change(  # and as the user draws, the newest stroke only
        live_guess,
        pad,
        [probs, seen],
        show_progress="hidden",
        trigger_mode="always_last",
        api_name=False,
    )


def loan_tab(gr, opts: DemoOptions, loan, bundle) -> None:
    def assess(purpose, *values):
        if bundle is None:
            raise refuse(gr, "no loan model: run 'intro-nn train loan' first", opts.debug)
        try:
            row = loan_row(purpose, from_human(list(values)))
        except UserError as exc:
            raise refuse(gr, str(exc), opts.debug) from exc
        return loan_answer(bundle, row)

    if loan:
        model_card(
            gr,
            "LendingClub loan MLP",
            "Probability that a loan is not fully paid, and the decision at the "
            "threshold chosen on the training folds.",
            loan,
            "cpu",
            list(loan.summary),
        )
    else:
        gr.Markdown("No loan model yet: run `intro-nn train loan`.")
    purpose = gr.Dropdown(list(PURPOSES), value="debt_consolidation", label="purpose")
    with gr.Row():
        with gr.Column():
            fields = [
                gr.Number(value=default, label=f"{label} [{lo:,g} to {hi:,g}]")
                for _, label, default, lo, hi, _ in HUMAN_FIELDS
            ]
        with gr.Column():
            verdict = gr.Markdown(elem_id="verdict")
            gauge = gr.Label(label="outcome", elem_id="gauge")
            details = gr.JSON(label="numbers", elem_id="details")
    gr.Button("Assess", variant="primary").click(
        assess, [purpose, *fields], [verdict, gauge, details], api_name="loan"
    )
    if loan and (loan.run / "figures" / "loan_roc_pr.png").is_file():
        gr.Image(str(loan.run / "figures" / "loan_roc_pr.png"), label="ROC and PR")


def run_demo(opts: DemoOptions) -> int:
    app = build_app(opts)
    return serve(
        app,
        opts,
        max_file_size=MAX_DRAWING_BYTES,
        max_upload_total=64 * MAX_DRAWING_BYTES,
        js=PICK_BRUSH,
    )
