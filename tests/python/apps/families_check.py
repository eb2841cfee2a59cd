"""Run under genie-launch by test_families_launch.py: the families named on
the command line (tests/python/families.py) through the executors of the
cluster, each compared with eager PyTorch at batch 1 and 4; prints one line
per family and exits 1 on any relative error of 1e-4 or more."""
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import genie                                   # noqa: E402
from conftest import rel_err                   # noqa: E402
from families import FAMILIES                  # noqa: E402

bad = 0
for name in sys.argv[1:]:
    build, inputs, output = FAMILIES[name]
    ref = build(seed=3)
    remote = copy.deepcopy(ref).to(genie.DEVICE)
    errs = []
    for batch in (1, 4):
        x = inputs(batch, torch.Generator().manual_seed(batch))
        with torch.no_grad():
            want = output(ref(**x))
            got = output(remote(**{k: v.to(genie.DEVICE) for k, v in x.items()})).cpu()
        errs.append(rel_err(got, want) if got.shape == want.shape else float("inf"))
    ok = all(e < 1e-4 for e in errs)
    bad += not ok
    print(f"family {name}: {'match' if ok else 'MISMATCH'} (relative errors "
          f"{', '.join(f'{e:.2e}' for e in errs)}; mode {genie.get_stats()['mode']})", flush=True)
sys.exit(1 if bad else 0)
