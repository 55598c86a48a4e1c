"""The model-coverage list: real torchvision and Hugging Face transformers architectures with random weights.

Nothing is downloaded: torchvision models are built with `weights=None`, transformers models from small configs
(2 layers, hidden 128, 2-4 heads, vocabulary 1000). Each entry names how to build it, its inputs (name, shape,
dtype) and their kind (image, video, tokens, audio, features), which the suite uses for calibration data.

`coverage_models:NAME` (with benchmarks/ on PYTHONPATH) is an `edgekit export` SPEC for every NAME in MODELS.

torchvision 0.28 on the package index is a CUDA build: its C extension does not load beside the CPU torch, and then
`import torchvision` fails in torchvision/_meta_registrations.py (`register_fake("torchvision::nms")` on an operator
that was never registered). The model definitions are pure Python and need none of the C ops, so `_torchvision()`
seeds an empty `torchvision._meta_registrations` module before the import. This lives here, in the coverage tooling
only: edgekit itself never imports torchvision.
"""
from __future__ import annotations

import functools
import importlib.util
import sys
import types
from dataclasses import dataclass

import numpy as np

SEQ = 16  # tokens per text input
VOCAB = 1000
HIDDEN = 128
LAYERS = 2


@dataclass(frozen=True)
class CoverageModel:
    name: str
    source: str  # torchvision | transformers
    kind: str  # image | video | tokens | audio | features
    inputs: tuple  # ((name, shape, dtype), ...)
    build: object  # () -> torch.nn.Module (eval mode, returning a tensor or a tuple of tensors)
    quick: bool = False  # part of the fast subset (tests, --quick)
    vocab: int = VOCAB

    def input_shapes(self) -> list[str]:
        """`--input-shape` strings for edgekit export: NAME=1x3x64x64:float32."""
        return [f"{n}={'x'.join(map(str, s))}:{d}" for n, s, d in self.inputs]


# ---------------------------------------------------------------- inputs of the right kind

def sample_inputs(model: CoverageModel, count: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`count` seeded rows per input, stacked on the batch axis: images/video N(0,1) (normalized pixels), token ids
    over the vocabulary with masks of ones and some trailing padding, audio as tones plus noise, log-mel-like
    features in [-1, 1]."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, dtype in model.inputs:
        rows = (count, *shape[1:])
        if model.kind in ("image", "video"):
            out[name] = rng.standard_normal(rows).astype(dtype)
        elif model.kind == "tokens" and name == "attention_mask":
            mask = np.ones(rows, dtype=dtype)
            for r, pad in enumerate(rng.integers(0, rows[-1] // 4 + 1, count)):
                mask[r, rows[-1] - pad:] = 0
            out[name] = mask
        elif model.kind == "tokens":
            out[name] = rng.integers(0, model.vocab, rows).astype(dtype)
        elif model.kind == "audio":
            t = np.arange(rows[-1]) / 16000.0
            freqs = rng.uniform(100, 2000, (count, 2))
            tones = sum(np.sin(2 * np.pi * freqs[:, k:k + 1] * t) for k in range(2)) * 0.25
            out[name] = (tones + 0.05 * rng.standard_normal((count, rows[-1]))).reshape(rows).astype(dtype)
        else:  # features (normalized log-mel)
            out[name] = np.clip(0.5 * rng.standard_normal(rows), -1, 1).astype(dtype)
    return out


def _torchvision():
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401  (a CPU build, or one whose extension loads, imports normally)
        except RuntimeError:
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]
            sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
            import torchvision  # noqa: F401
    import torchvision.models
    return torchvision.models


def _nn():
    import torch
    return torch.nn


# ---------------------------------------------------------------- wrappers: fixed positional inputs, tensor outputs

def _first_output(model, key: str | None = None):
    """Wrap a model whose forward returns a dict/ModelOutput: keep one tensor (by key, or the first)."""
    nn = _nn()

    class FirstOutput(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            out = self.model(x)
            if isinstance(out, dict) or hasattr(out, "keys"):
                return out[key] if key else next(iter(out.values()))
            return out[0] if isinstance(out, (tuple, list)) else out

    return FirstOutput().eval()


def _text(model, key: str = "last_hidden_state", **call):
    """HF text model → forward(input_ids, attention_mask) returning one tensor."""
    nn = _nn()

    class TextModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **call)[key]

    return TextModel().eval()


def _pixels(model, key: str = "last_hidden_state"):
    nn = _nn()

    class VisionModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values)[key]

    return VisionModel().eval()


def _tv(factory: str, **kwargs):
    def build():
        return getattr(_torchvision(), factory)(weights=None, **kwargs).eval()
    return build


def _tv_seg(factory: str):
    def build():
        net = getattr(_torchvision().segmentation, factory)(weights=None, weights_backbone=None, aux_loss=False)
        return _first_output(net.eval(), "out")
    return build


def _tv_vit():
    _torchvision()
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=64, patch_size=16, num_layers=LAYERS, num_heads=2, hidden_dim=HIDDEN,
                             mlp_dim=4 * HIDDEN, num_classes=10).eval()


def _tv_r3d():
    return _torchvision().video.r3d_18(weights=None).eval()


# ---------------------------------------------------------------- transformers

def _hf(model_cls: str, config_cls: str, **config):
    if importlib.util.find_spec("torchvision") is not None:
        _torchvision()  # transformers imports torchvision when it is installed: the same workaround applies
    import transformers
    cfg = getattr(transformers, config_cls)(**config)
    return getattr(transformers, model_cls)(cfg).eval()


_BERTLIKE = dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2,
                 intermediate_size=4 * HIDDEN, max_position_embeddings=128)
_VISION = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=4 * HIDDEN,
               image_size=64, patch_size=16)


def _bert():
    return _text(_hf("BertModel", "BertConfig", **_BERTLIKE))


def _distilbert():
    return _text(_hf("DistilBertModel", "DistilBertConfig", vocab_size=VOCAB, dim=HIDDEN, n_layers=LAYERS, n_heads=2,
                     hidden_dim=4 * HIDDEN, max_position_embeddings=128))


def _roberta():
    return _text(_hf("RobertaModel", "RobertaConfig", **_BERTLIKE | {"max_position_embeddings": 130}))


def _albert():
    return _text(_hf("AlbertModel", "AlbertConfig", **_BERTLIKE | {"embedding_size": 64}))


def _electra():
    return _text(_hf("ElectraModel", "ElectraConfig", **_BERTLIKE | {"embedding_size": 64}))


def _mobilebert():
    return _text(_hf("MobileBertModel", "MobileBertConfig", **_BERTLIKE | dict(
        embedding_size=64, intra_bottleneck_size=64, true_hidden_size=64, intermediate_size=HIDDEN,
        num_feedforward_networks=2)))


def _deberta_v2():
    return _text(_hf("DebertaV2Model", "DebertaV2Config", **_BERTLIKE | dict(
        relative_attention=True, position_buckets=32, pos_att_type=["p2c", "c2p"])))


def _gpt2():
    return _text(_hf("GPT2Model", "GPT2Config", vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=2,
                     n_positions=128, bos_token_id=0, eos_token_id=2), use_cache=False)


def _t5_encoder():
    return _text(_hf("T5EncoderModel", "T5Config", vocab_size=VOCAB, d_model=HIDDEN, d_kv=32, d_ff=4 * HIDDEN,
                     num_layers=LAYERS, num_heads=4))


def _bart_encoder():
    model = _hf("BartModel", "BartConfig", vocab_size=VOCAB, d_model=HIDDEN, encoder_layers=LAYERS,
                decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                encoder_ffn_dim=4 * HIDDEN, decoder_ffn_dim=4 * HIDDEN, max_position_embeddings=128)
    return _text(model.get_encoder())


def _clip_text():
    return _text(_hf("CLIPTextModel", "CLIPTextConfig", vocab_size=VOCAB, hidden_size=HIDDEN,
                     num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=4 * HIDDEN,
                     max_position_embeddings=32, bos_token_id=0, eos_token_id=2, pad_token_id=1),
                 key="pooler_output")


def _vit():
    return _pixels(_hf("ViTModel", "ViTConfig", **_VISION))


def _deit():
    return _pixels(_hf("DeiTModel", "DeiTConfig", **_VISION))


def _beit():
    return _pixels(_hf("BeitModel", "BeitConfig", **_VISION, use_relative_position_bias=True,
                       layer_scale_init_value=0.1))


def _clip_vision():
    return _pixels(_hf("CLIPVisionModel", "CLIPVisionConfig", **_VISION), key="pooler_output")


def _mobilevit():  # the xx-small configuration
    return _pixels(_hf("MobileViTModel", "MobileViTConfig", image_size=64, hidden_sizes=[64, 80, 96],
                       neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], expand_ratio=2.0, num_attention_heads=2))


def _swin():
    return _pixels(_hf("SwinModel", "SwinConfig", image_size=64, patch_size=4, embed_dim=32, depths=[1, 1, 2],
                       num_heads=[2, 2, 4], window_size=4))


def _convnext():
    return _pixels(_hf("ConvNextModel", "ConvNextConfig", hidden_sizes=[32, 64, 96, 128], depths=[1, 1, 2, 1],
                       layer_scale_init_value=1e-6), key="pooler_output")


def _segformer():
    return _pixels(_hf("SegformerForSemanticSegmentation", "SegformerConfig", hidden_sizes=[16, 32, 64, 128],
                       depths=[1, 1, 1, 1], num_attention_heads=[1, 2, 2, 4], decoder_hidden_size=64, num_labels=4),
                   key="logits")


def _whisper_encoder():
    model = _hf("WhisperModel", "WhisperConfig", vocab_size=VOCAB, d_model=HIDDEN, encoder_layers=LAYERS,
                decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=4 * HIDDEN,
                decoder_ffn_dim=4 * HIDDEN, num_mel_bins=80, max_source_positions=100, max_target_positions=32,
                pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2)
    encoder = model.get_encoder()
    nn = _nn()

    class WhisperEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_features):
            return self.encoder(input_features=input_features).last_hidden_state

    return WhisperEncoder().eval()


def _wav2vec2():
    model = _hf("Wav2Vec2Model", "Wav2Vec2Config", hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                num_attention_heads=2, intermediate_size=4 * HIDDEN, conv_dim=(64,) * 7,
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="group")
    nn = _nn()

    class Wav2Vec2(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_values):
            return self.model(input_values=input_values).last_hidden_state

    return Wav2Vec2().eval()


# ---------------------------------------------------------------- the list

def _image(size: int, name: str = "x"):
    return ((name, (1, 3, size, size), "float32"),)


_TOKENS = (("input_ids", (1, SEQ), "int64"), ("attention_mask", (1, SEQ), "int64"))
_PIXELS = _image(64, "pixel_values")

_ENTRIES = [
    # torchvision classification: one per family, smallest variant
    CoverageModel("alexnet", "torchvision", "image", _image(224), _tv("alexnet")),
    CoverageModel("vgg11_bn", "torchvision", "image", _image(224), _tv("vgg11_bn")),
    CoverageModel("resnet18", "torchvision", "image", _image(64), _tv("resnet18"), quick=True),
    CoverageModel("resnext50_32x4d", "torchvision", "image", _image(64), _tv("resnext50_32x4d")),
    CoverageModel("wide_resnet50_2", "torchvision", "image", _image(64), _tv("wide_resnet50_2")),
    CoverageModel("squeezenet1_1", "torchvision", "image", _image(64), _tv("squeezenet1_1"), quick=True),
    CoverageModel("densenet121", "torchvision", "image", _image(64), _tv("densenet121")),
    CoverageModel("inception_v3", "torchvision", "image", _image(96),
                  _tv("inception_v3", aux_logits=False, init_weights=True)),
    CoverageModel("googlenet", "torchvision", "image", _image(64),
                  _tv("googlenet", aux_logits=False, init_weights=True)),
    CoverageModel("shufflenet_v2_x0_5", "torchvision", "image", _image(64), _tv("shufflenet_v2_x0_5"), quick=True),
    CoverageModel("mobilenet_v2", "torchvision", "image", _image(64), _tv("mobilenet_v2"), quick=True),
    CoverageModel("mobilenet_v3_small", "torchvision", "image", _image(64), _tv("mobilenet_v3_small"), quick=True),
    CoverageModel("mnasnet0_5", "torchvision", "image", _image(64), _tv("mnasnet0_5")),
    CoverageModel("efficientnet_b0", "torchvision", "image", _image(64), _tv("efficientnet_b0")),
    CoverageModel("efficientnet_v2_s", "torchvision", "image", _image(64), _tv("efficientnet_v2_s")),
    CoverageModel("regnet_x_400mf", "torchvision", "image", _image(64), _tv("regnet_x_400mf")),
    CoverageModel("regnet_y_400mf", "torchvision", "image", _image(64), _tv("regnet_y_400mf")),
    CoverageModel("convnext_tiny", "torchvision", "image", _image(64), _tv("convnext_tiny")),
    CoverageModel("vit_tiny", "torchvision", "image", _image(64), _tv_vit, quick=True),
    CoverageModel("swin_t", "torchvision", "image", _image(64), _tv("swin_t")),
    CoverageModel("swin_v2_t", "torchvision", "image", _image(64), _tv("swin_v2_t")),
    CoverageModel("maxvit_t", "torchvision", "image", _image(224), _tv("maxvit_t")),
    # torchvision segmentation and video
    CoverageModel("fcn_resnet50", "torchvision", "image", _image(64), _tv_seg("fcn_resnet50")),
    CoverageModel("deeplabv3_mobilenet_v3_large", "torchvision", "image", _image(64),
                  _tv_seg("deeplabv3_mobilenet_v3_large")),
    CoverageModel("lraspp_mobilenet_v3_large", "torchvision", "image", _image(64),
                  _tv_seg("lraspp_mobilenet_v3_large"), quick=True),
    CoverageModel("r3d_18", "torchvision", "video", (("x", (1, 3, 4, 32, 32), "float32"),), _tv_r3d),
    # transformers: text (int64 input_ids and attention_mask, as HF models take them)
    CoverageModel("hf_bert", "transformers", "tokens", _TOKENS, _bert, quick=True),
    CoverageModel("hf_distilbert", "transformers", "tokens", _TOKENS, _distilbert),
    CoverageModel("hf_roberta", "transformers", "tokens", _TOKENS, _roberta),
    CoverageModel("hf_albert", "transformers", "tokens", _TOKENS, _albert),
    CoverageModel("hf_electra", "transformers", "tokens", _TOKENS, _electra),
    CoverageModel("hf_mobilebert", "transformers", "tokens", _TOKENS, _mobilebert),
    CoverageModel("hf_deberta_v2", "transformers", "tokens", _TOKENS, _deberta_v2),
    CoverageModel("hf_gpt2", "transformers", "tokens", _TOKENS, _gpt2),
    CoverageModel("hf_t5_encoder", "transformers", "tokens", _TOKENS, _t5_encoder),
    CoverageModel("hf_bart_encoder", "transformers", "tokens", _TOKENS, _bart_encoder),
    CoverageModel("hf_clip_text", "transformers", "tokens", _TOKENS, _clip_text),
    # transformers: vision
    CoverageModel("hf_vit", "transformers", "image", _PIXELS, _vit, quick=True),
    CoverageModel("hf_deit", "transformers", "image", _PIXELS, _deit),
    CoverageModel("hf_beit", "transformers", "image", _PIXELS, _beit),
    CoverageModel("hf_clip_vision", "transformers", "image", _PIXELS, _clip_vision),
    CoverageModel("hf_mobilevit", "transformers", "image", _PIXELS, _mobilevit),
    CoverageModel("hf_swin", "transformers", "image", _PIXELS, _swin),
    CoverageModel("hf_convnext", "transformers", "image", _PIXELS, _convnext, quick=True),
    CoverageModel("hf_segformer", "transformers", "image", _PIXELS, _segformer),
    # transformers: audio
    CoverageModel("hf_whisper_encoder", "transformers", "features", (("input_features", (1, 80, 200), "float32"),),
                  _whisper_encoder),
    CoverageModel("hf_wav2vec2", "transformers", "audio", (("input_values", (1, 4000), "float32"),), _wav2vec2),
]

MODELS: dict[str, CoverageModel] = {m.name: m for m in _ENTRIES}
QUICK = [m.name for m in _ENTRIES if m.quick]


def representative(model: CoverageModel):
    """`model` built from a fixed seed, so every run judges the same weights.

    The constructors' own initialisation is kept, BatchNorm statistics included (mean 0, variance 1): deep CNNs then
    shrink their activations layer by layer (MobileNet V2's logits near 1e-9, EfficientNet-B0's near 1e-14), which
    validation judges against the scale of the float activations they are computed from (edgekit/activation_scale.py).
    Re-estimating the statistics on random images was tried and dropped: it gave O(1) logits, but ONNX Runtime's own
    INT8 and dynamic models of the depthwise CNNs then differed from float by 30–60 % of the output scale (MNASNet,
    ShuffleNet), a network no trained model resembles either, and the comparison with TFLite measured that noise."""
    import torch
    torch.manual_seed(0)
    return model.build()


def __getattr__(name: str):
    """`coverage_models:NAME` as an export SPEC: the factory of the model NAME, seeded."""
    if name in MODELS:
        return functools.partial(representative, MODELS[name])
    raise AttributeError(name)
