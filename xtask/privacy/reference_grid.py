#!/usr/bin/env python3
"""Writes core/src/privacy/reference_grid.json: epsilon of the Poisson-subsampled Gaussian
mechanism composed over steps, from Google's dp-accounting (0.6.0, RdpAccountant with its
default orders) and Opacus (1.6.0, its RDP analysis with its default orders), over a grid of
(sampling rate q, noise multiplier sigma, steps, delta). fedpref's accountant is tested against
both to 1 % relative (core/src/privacy/tests.rs). Needs `pip install dp-accounting==0.6.0
opacus==1.6.0` (Opacus imports torch); the file is committed, so the tests need neither.

    python xtask/privacy/reference_grid.py 2>/dev/null > core/src/privacy/reference_grid.json

(dp-accounting logs a warning for every fractional order whose series it gives up on.)
"""

import itertools
import json

import dp_accounting
from dp_accounting import rdp as dp_rdp
from opacus.accountants.analysis import rdp as opacus_rdp

OPACUS_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))

rows = []
for q, sigma, steps, delta in itertools.product(
    [0.001, 0.01, 0.1, 0.3, 1.0], [0.5, 0.8, 1.0, 2.0, 5.0], [1, 10, 100, 1000], [1e-5, 1e-7]
):
    accountant = dp_rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    dp_eps = accountant.get_epsilon(delta)
    rdp = opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=OPACUS_ORDERS)
    opacus_eps, _ = opacus_rdp.get_privacy_spent(orders=OPACUS_ORDERS, rdp=rdp, delta=delta)
    rows.append({"q": q, "sigma": sigma, "steps": steps, "delta": delta,
                 "dp_accounting": dp_eps, "opacus": float(opacus_eps)})

print(json.dumps({
    "source": "dp-accounting 0.6.0 RdpAccountant (default orders); opacus 1.6.0 rdp analysis "
              "(orders 1.1..10.9 by 0.1, then 12..63)",
    "opacus_orders": OPACUS_ORDERS,
    "rows": rows,
}, indent=1))
