"""Run under genie-launch by test_cluster_threads.py: two Python threads
call genie.generate at the same time (three times each, the first call
starting the cluster); every result must equal PyTorch's greedy tokens."""
import copy
import os
import sys
import threading

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import genie                      # noqa: E402
from conftest import gpt2         # noqa: E402

NEW = 8
ref = gpt2()
remote = copy.deepcopy(ref).to(genie.DEVICE)
g = torch.Generator().manual_seed(1)
prompts = [torch.randint(0, ref.config.vocab_size, (1, 4 + i), generator=g) for i in range(2)]
with torch.no_grad():
    want = [ref.generate(p, max_new_tokens=NEW, do_sample=False, pad_token_id=0) for p in prompts]
got = [[], []]
errors = []


def work(i):
    try:
        for _ in range(3):
            got[i].append(genie.generate(remote, prompts[i], max_new_tokens=NEW))
    except BaseException as e:          # reported by the main thread
        errors.append(f"thread {i}: {e!r}")


threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit("two threads: " + "; ".join(errors))
bad = [(i, k) for i in range(2) for k, o in enumerate(got[i]) if not torch.equal(o, want[i])]
if bad:
    sys.exit(f"two threads: results differ from PyTorch's greedy tokens: {bad}")
print(f"two threads: all 6 results match ({genie.get_stats()['mode']})")
