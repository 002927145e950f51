"""A deterministic regression dataset for exercising the training plumbing."""
import torch
from torch.utils.data import Dataset

from pavdit.registry import DATASETS


@DATASETS.register_module()
class TeacherRegressionDataset(Dataset):
    """Random token sequences labelled by a fixed random teacher (the same for every seed-equal run).

    Item ``i`` is ``dict(inputs=(seq_len, in_dim), targets=(out_dim,))``; the target is a fixed
    random linear map of the sequence's mean token passed through ``tanh``, so a small model can fit
    it and a loss curve means something.
    """

    def __init__(self, num_items: int = 64, seq_len: int = 5, in_dim: int = 8, out_dim: int = 4,
                 seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(num_items, seq_len, in_dim, generator=generator)
        teacher = torch.randn(in_dim, out_dim, generator=generator)
        self.targets = torch.tanh(self.inputs.mean(dim=1) @ teacher)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=self.inputs[index], targets=self.targets[index])
