"""Models with dynamic dimensions for the dynamic-shape tests and benchmark (random seeded weights, no download).

`edgekit export` SPECs: `tests/converters/tflite/dynamic_models.py:tiny_bert` (input_ids, attention_mask →
last_hidden_state; a 2-layer BERT encoder, hidden 64, up to 128 tokens) and `...:seg_net` (a small conv /
relu / upsample / concat net whose height and width stay dynamic). Workstation only: torch and transformers.
"""
from __future__ import annotations

import sys
import types

MAX_TOKENS = 128
HIDDEN = 64
VOCAB = 512


def _transformers():
    """transformers without a broken torchvision (see examples/text_search/models.py for why)."""
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except (RuntimeError, ImportError):
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]
            sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import transformers
    return transformers


def tiny_bert():
    """BERT's encoder over token ids and a 0/1 mask; positions 0..T-1 and token type 0 written out (as the
    text_search example does: the module's own buffers export to int64 index arithmetic)."""
    import torch
    torch.manual_seed(0)
    transformers = _transformers()
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=4 * HIDDEN, max_position_embeddings=MAX_TOKENS,
                                     attn_implementation="eager")
    bert = transformers.BertModel(config, add_pooling_layer=False).eval()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            emb = self.bert.embeddings
            tokens = input_ids.shape[1]
            hidden = (emb.word_embeddings(input_ids) + emb.position_embeddings.weight[:tokens]
                      + emb.token_type_embeddings.weight[0])
            hidden = emb.LayerNorm(hidden)
            bias = (1.0 - attention_mask.to(hidden.dtype)[:, None, None, :]) * torch.finfo(hidden.dtype).min
            return self.bert.encoder(hidden, attention_mask=bias).last_hidden_state

    return Encoder().eval()


def seg_net():
    """A segmentation-style net: conv → relu → upsample ×2 → strided conv → concat with the skip → 1×1 conv (the
    upsample comes first so any height and width, odd ones too, give matching sizes at the concat)."""
    import torch
    torch.manual_seed(0)

    class Seg(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")
            self.head = torch.nn.Conv2d(24, 4, 1)

        def forward(self, x):
            skip = torch.relu(self.c1(x))
            deep = torch.relu(self.c2(self.up(skip)))
            return self.head(torch.cat([skip, deep], dim=1))

    return Seg().eval()
