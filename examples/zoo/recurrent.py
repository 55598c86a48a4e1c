"""Recurrent zoo models: batch-first sequence classifiers over (batch, seq, features)."""
import torch
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, cell: str, features: int = 8, hidden: int = 32, classes: int = 4):
        super().__init__()
        self.rnn = getattr(nn, cell)(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        seq, _ = self.rnn(x)
        return self.head(seq[:, -1])


def _make(cell: str) -> nn.Module:
    torch.manual_seed(0)
    return SequenceClassifier(cell).eval()


def rnn() -> nn.Module:
    return _make("RNN")


def lstm() -> nn.Module:
    return _make("LSTM")


def gru() -> nn.Module:
    return _make("GRU")
