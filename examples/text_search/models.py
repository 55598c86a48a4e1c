"""The example's text models, built from transformers configs (random weights; nothing is downloaded).

`edgekit export` SPECs: `examples/text_search/models.py:sentence_encoder` (input_ids, attention_mask →
last_hidden_state [batch, tokens, hidden]; the app mean-pools it) and `...:topic_classifier` (→ logits).
Workstation only: torch and transformers; the device never imports this file.
"""
from __future__ import annotations

import os
import sys
import types

VOCAB = int(os.environ.get("EDGEKIT_TEXT_VOCAB", "512"))   # the tokenizer's size must not exceed it
MAX_TOKENS = 64        # max_position_embeddings: the longest text the model takes
HIDDEN = 64
TOPICS = ("weather", "cooking", "computers", "sports")


def _transformers():
    """transformers imports torchvision when it is installed; a torchvision built for another torch (the CUDA wheel
    beside the CPU torch) fails in its operator registrations, which BERT never uses, so those are skipped."""
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except (RuntimeError, ImportError):
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]
            sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import transformers
    return transformers


def _bert_config(**extra):
    transformers = _transformers()
    return transformers.BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=4 * HIDDEN, max_position_embeddings=MAX_TOKENS,
                                   attn_implementation="eager", **extra)


def _seeded():
    import torch
    torch.manual_seed(0)
    return torch


def _embed(embeddings, input_ids):
    """BertEmbeddings with positions 0..T-1 and token type 0, written out: the module's own position-id and
    token-type buffers export to int64 index arithmetic (FLOOR_MOD) that LiteRT rejects with int32 ids."""
    tokens = input_ids.shape[1]
    hidden = (embeddings.word_embeddings(input_ids) + embeddings.position_embeddings.weight[:tokens]
              + embeddings.token_type_embeddings.weight[0])
    return embeddings.dropout(embeddings.LayerNorm(hidden))


def sentence_encoder():
    """A BERT-style encoder: token states [batch, tokens, hidden], for mean pooling over the mask."""
    torch = _seeded()
    transformers = _transformers()
    bert = transformers.BertModel(_bert_config(), add_pooling_layer=False).eval()

    class SentenceEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            # the additive mask is built here, as BERT's eager attention adds it: transformers' own mask helpers
            # index a bool tensor (GatherND on bool), which edgekit's TFLite compiler does not lower
            hidden = _embed(self.bert.embeddings, input_ids)
            bias = (1.0 - attention_mask.to(hidden.dtype)[:, None, None, :]) * torch.finfo(hidden.dtype).min
            return self.bert.encoder(hidden, attention_mask=bias).last_hidden_state

    return SentenceEncoder().eval()


def topic_classifier():
    """A BERT-style sequence classifier over TOPICS: logits [batch, len(TOPICS)].

    It classifies the masked mean of the token states — the very vector the search app ranks by — rather than BERT's
    [CLS] pooler, so fine-tuning it makes the encoder's mean-pooled sentence vectors separate the topics (with the
    pooler, the mean-pooled vectors were never trained and the ranking depended on the random start)."""
    torch = _seeded()
    transformers = _transformers()
    model = transformers.BertForSequenceClassification(_bert_config(num_labels=len(TOPICS))).eval()
    model.bert.pooler = None  # unused: the head reads the mean-pooled states

    class TopicClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            bert = self.model.bert
            hidden = _embed(bert.embeddings, input_ids)
            bias = (1.0 - attention_mask.to(hidden.dtype)[:, None, None, :]) * torch.finfo(hidden.dtype).min
            states = bert.encoder(hidden, attention_mask=bias).last_hidden_state
            weights = attention_mask.to(states.dtype)[:, :, None]
            pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            return self.model.classifier(pooled)

    return TopicClassifier().eval()
