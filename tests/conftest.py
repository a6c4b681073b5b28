import os
import sys

# tests import their shared builders as `helpers`
sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402

# PyTorch's intra-op threads make small per-step ops many times slower on a 2-core machine
torch.set_num_threads(1)
