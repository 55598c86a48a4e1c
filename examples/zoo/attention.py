"""A small transformer encoder over token ids: embeddings, self-attention, LayerNorm, GELU."""
import torch
from torch import nn


class TransformerClassifier(nn.Module):
    def __init__(self, vocab: int = 100, d_model: int = 32, heads: int = 4, layers: int = 2, max_len: int = 64,
                 classes: int = 4):
        super().__init__()
        self.token = nn.Embedding(vocab, d_model)
        self.position = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=64, dropout=0.0, activation="gelu",
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        x = self.token(tokens) + self.position(positions)
        x = self.encoder(x)
        return self.head(self.norm(x).mean(1))


def transformer_encoder() -> nn.Module:
    torch.manual_seed(0)
    return TransformerClassifier().eval()
