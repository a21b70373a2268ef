"""The loan pipeline: engineered features, one-hot purpose, scaling, and the classifiers compared."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from intro_nn.loan_data import CATEGORICAL, NUMERIC, PURPOSES

ENGINEERED = ("payment_to_income", "revol_to_income")
# dti (all debt payments over income) is left out: the two ratios above carry it, split into the
# new loan's instalments and the revolving balance, and the MLP ranks better without the overlap
# (+0.001 ROC-AUC on average over five different fold seeds; see the README)
DTI = NUMERIC.index("dti")
MODEL_NUMERIC = NUMERIC[:DTI] + NUMERIC[DTI + 1 :] + ENGINEERED


def add_features(df: pd.DataFrame) -> pd.DataFrame:
    """Ratios a credit analyst would look at: yearly instalments and revolving balance over income."""
    out = df.loc[:, [CATEGORICAL, *NUMERIC]].copy()
    income = np.exp(out["log.annual.inc"])
    out["payment_to_income"] = out["installment"] * 12 / income
    out["revol_to_income"] = out["revol.bal"] / income
    return out


def preprocessor() -> Pipeline:
    """Engineered ratios, one-hot purpose, standardised numerics.

    The numerics are only standardised, not log-compressed: the long right tails (recent
    inquiries, revolving balance) hold the highest default rates, and squashing them cost the MLP
    0.004 ROC-AUC and 0.005 PR-AUC on these folds.
    """
    columns = ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(MODEL_NUMERIC)),
            (
                "purpose",
                OneHotEncoder(categories=[list(PURPOSES)], handle_unknown="error"),
                [CATEGORICAL],
            ),
        ]
    )
    return Pipeline([("features", FunctionTransformer(add_features)), ("columns", columns)])


class LogLossEarlyStoppingMLP(MLPClassifier):
    """MLPClassifier whose early stopping watches validation log-loss, not accuracy.

    With 84% of loans repaid, validation accuracy sits at the majority rate from the first epoch,
    so scikit-learn's default early stopping halts an untrained network. Log-loss keeps improving
    while the model learns to rank risk.
    """

    def _score(self, X, y, sample_weight=None):
        proba = self._forward_pass_fast(X, check_input=False)
        return -log_loss(y, proba, sample_weight=sample_weight, labels=[0, 1])


def make_mlp(hidden: tuple[int, ...], alpha: float, solver: str, seed: int) -> MLPClassifier:
    if solver == "lbfgs":
        # Full-batch L-BFGS with a strong L2 penalty: the penalty, not the iteration count,
        # is what stops it from overfitting 9.5k rows.
        return MLPClassifier(hidden, alpha=alpha, solver="lbfgs", max_iter=500, random_state=seed)
    return LogLossEarlyStoppingMLP(
        hidden,
        alpha=alpha,
        solver="adam",
        batch_size=128,
        max_iter=300,
        early_stopping=True,
        validation_fraction=0.2,
        n_iter_no_change=10,
        random_state=seed,
    )


def make_models(
    hidden: tuple[int, ...], alpha: float, solver: str, seed: int
) -> dict[str, Pipeline]:
    """The three models compared on the same folds, each behind the same preprocessing."""
    return {
        "majority": Pipeline(
            [("prep", preprocessor()), ("clf", DummyClassifier(strategy="prior"))]
        ),
        "logreg": Pipeline([("prep", preprocessor()), ("clf", LogisticRegression(max_iter=2000))]),
        "mlp": Pipeline([("prep", preprocessor()), ("clf", make_mlp(hidden, alpha, solver, seed))]),
    }
