import torch

# PyTorch's intra-op threads make small per-step ops many times slower on a 2-core machine
torch.set_num_threads(1)
