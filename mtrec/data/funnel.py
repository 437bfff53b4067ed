"""A synthetic click -> purchase funnel, for ESMM-style chains.

Purchase is only possible after a click, so the purchase label is the click
label times a conversion draw. The true probabilities are returned beside the
labels, so tests can check a model against the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_funnel(n_rows: int, num_features: int = 20, click_rate_shift: float = -1.0,
                conversion_shift: float = -0.5, seed: int = 0) -> pd.DataFrame:
    """Generates rows with `x0..x{d-1}`, `click`, `purchase` and the true probabilities.

    p(click) = sigmoid(a·x + click_rate_shift); p(buy | click) =
    sigmoid(b·x + sin(2 c·x) + conversion_shift), with a, b, c random unit
    directions (b partly aligned with a, as click and purchase intent are
    related); purchase = click · buy.

    Args:
        n_rows: rows.
        num_features: input dimension.
        click_rate_shift: logit offset of clicks (more negative: rarer clicks).
        conversion_shift: logit offset of conversion after a click.
        seed: seed of the directions and the rows.

    Returns:
        A DataFrame with float32 features, int8 labels `click` and
        `purchase`, and float columns `p_click`, `p_buy_given_click`.
    """
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(3, num_features))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    a, c = directions[0] * 2.0, directions[2]
    b = 0.5 * directions[0] + directions[1]
    b = 2.0 * b / np.linalg.norm(b)
    x = rng.normal(size=(n_rows, num_features))
    sigmoid = lambda z: 1 / (1 + np.exp(-z))
    p_click = sigmoid(x @ a + click_rate_shift)
    p_buy = sigmoid(x @ b + np.sin(2 * x @ c) + conversion_shift)
    click = rng.random(n_rows) < p_click
    buy = rng.random(n_rows) < p_buy
    frame = pd.DataFrame(x.astype("float32"), columns=[f"x{i}" for i in range(num_features)])
    frame["click"] = click.astype("int8")
    frame["purchase"] = (click & buy).astype("int8")
    frame["p_click"] = p_click
    frame["p_buy_given_click"] = p_buy
    return frame
