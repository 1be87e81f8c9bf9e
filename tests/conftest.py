"""Test-session settings shared by every test module."""

import torch

# Test tensors are tiny: one intra-op thread is faster for them, and it keeps the suite
# from stalling in OpenMP spin-waits when the 2-core CI machine has other work.
torch.set_num_threads(1)
