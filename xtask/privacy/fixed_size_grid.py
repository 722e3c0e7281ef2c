#!/usr/bin/env python3
"""Writes core/src/privacy/fixed_size_grid.json: epsilon of the Gaussian mechanism on a sample
of fixed size m drawn without replacement from n (replace-one neighbours), composed over steps,
from Google's dp-accounting 0.6.0 (RdpAccountant with its default orders; Opacus has no such
accountant), over a grid of (m / n, noise multiplier sigma, steps, delta). fedpref's accountant
is tested against it to 1 % relative (core/src/privacy/accountant_tests.rs). Needs
`pip install dp-accounting==0.6.0`; the file is committed, so the tests need no Python.

    python xtask/privacy/fixed_size_grid.py > core/src/privacy/fixed_size_grid.json
"""

import itertools
import json

import dp_accounting
from dp_accounting import rdp as dp_rdp

N = 1000
rows = []
for m, sigma, steps, delta in itertools.product(
    [10, 50, 100, 250, 500], [0.8, 1.0, 2.0, 5.0], [1, 10, 100, 1000], [1e-5, 1e-7]
):
    accountant = dp_rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE
    )
    event = dp_accounting.SampledWithoutReplacementDpEvent(
        N, m, dp_accounting.GaussianDpEvent(sigma)
    )
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    rows.append({"q": m / N, "sigma": sigma, "steps": steps, "delta": delta,
                 "dp_accounting": accountant.get_epsilon(delta)})

print(json.dumps({
    "source": "dp-accounting 0.6.0 RdpAccountant (default orders, REPLACE_ONE), "
              "SampledWithoutReplacementDpEvent of a GaussianDpEvent",
    "rows": rows,
}, indent=1))
