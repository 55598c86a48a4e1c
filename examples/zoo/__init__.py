"""The model zoo: one small, deterministic PyTorch model per family edgekit serves (`zoo:NAME`).

Each entry names its factory, example inputs (name, shape, dtype), dynamic axes worth validating,
and its task, so export, quantize, convert and pipeline can run on it with no other information.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: str  # "module:function" under edgekit.zoo
    inputs: tuple  # ((name, shape, dtype), ...)
    outputs: tuple  # output names
    family: str
    task: str = "classification"  # classification | regression | generation | detection | segmentation
    # {input: {dim: label}} that may be dynamic: `export --zoo-dynamic` (pipeline [model] zoo_dynamic) makes them so,
    # validated at two sizes; the recurrent ones export but do not compile to TFLite (fixed loop step counts)
    dynamic_axes: dict = field(default_factory=dict)
    description: str = ""
    # how apps feed it and name its classes, in the processing file's form (edgekit.processing); export writes it into
    # the model's metadata so `edgekit.load(model).detect()/segment()` needs nothing else
    processing: dict = field(default_factory=dict)

    def build(self):
        module, func = self.factory.split(":")
        return getattr(importlib.import_module(f"edgekit.zoo.{module}"), func)()


_SEQ = {"x": {1: "seq"}}
_SHAPES = ["rectangle", "circle", "triangle"]  # edgekit.zoo.detection.SHAPES (that module imports torch)
# trained on undistorted 64x64 scenes: other images keep their aspect ratio, padded grey, as YOLO-style models expect
_SHAPES_IMAGE = {"kind": "image", "layout": "NCHW", "scale": 1 / 255, "letterbox": True}
ZOO = {e.name: e for e in [
    ZooEntry("mlp", "feedforward:mlp", (("x", (1, 64), "float32"),), ("logits",), "mlp",
             description="3-layer MLP on flattened 8x8 digits"),
    ZooEntry("lenet", "cnn:lenet", (("image", (1, 1, 28, 28), "float32"),), ("logits",), "cnn",
             description="LeNet-style CNN: conv32-pool-conv64-pool-conv64-dense64-dense10 on 28x28x1"),
    ZooEntry("resnet", "cnn:resnet18", (("image", (1, 3, 224, 224), "float32"),), ("logits",), "cnn",
             description="ResNet-18-style CNN with BasicBlocks and BatchNorm"),
    ZooEntry("mobilenet", "cnn:mobilenet_v2", (("image", (1, 3, 224, 224), "float32"),), ("logits",), "cnn",
             description="MobileNetV2-style CNN: inverted residuals, depthwise convs, ReLU6"),
    ZooEntry("rnn", "recurrent:rnn", (("x", (1, 16, 8), "float32"),), ("logits",), "recurrent", dynamic_axes=_SEQ,
             description="vanilla RNN sequence classifier (batch-first)"),
    ZooEntry("lstm", "recurrent:lstm", (("x", (1, 16, 8), "float32"),), ("logits",), "recurrent", dynamic_axes=_SEQ,
             description="LSTM sequence classifier (batch-first)"),
    ZooEntry("gru", "recurrent:gru", (("x", (1, 16, 8), "float32"),), ("logits",), "recurrent", dynamic_axes=_SEQ,
             description="GRU sequence classifier (batch-first)"),
    ZooEntry("transformer", "attention:transformer_encoder", (("tokens", (1, 16), "int64"),), ("logits",), "attention",
             dynamic_axes={"tokens": {1: "seq"}},
             description="2-layer transformer encoder: token + positional embeddings, self-attention, GELU"),
    ZooEntry("autoencoder", "generative:autoencoder", (("image", (1, 1, 28, 28), "float32"),), ("reconstruction",),
             "autoencoder", task="regression", description="convolutional autoencoder (Conv + ConvTranspose)"),
    ZooEntry("vae_encoder", "generative:vae_encoder", (("image", (1, 1, 28, 28), "float32"),), ("mean", "log_var"),
             "vae", task="regression", description="VAE encoder to mean and log-variance"),
    ZooEntry("vae_decoder", "generative:vae_decoder", (("z", (1, 16), "float32"),), ("image",), "vae",
             task="generation", description="VAE decoder from a latent vector"),
    ZooEntry("gan_generator", "generative:gan_generator", (("z", (1, 64), "float32"),), ("image",), "gan",
             task="generation", description="GAN generator: Linear, ConvTranspose, Upsample, BatchNorm, Tanh"),
    ZooEntry("detector", "detection:tiny_detector", (("image", (1, 3, 64, 64), "float32"),), ("detections",),
             "detection", task="detection",
             description="YOLO-style anchor-free detector (DFL box bins, grid decode) for 64x64 synthetic shapes; "
                         "train with edgekit.zoo.detection.train",
             processing={"preprocess": _SHAPES_IMAGE, "labels": _SHAPES}),
    ZooEntry("segmenter", "segmentation:tiny_unet", (("image", (1, 3, 64, 64), "float32"),), ("logits",),
             "segmentation", task="segmentation",
             description="U-Net-style segmenter (strided encoder, nearest Upsample + skip concats) to per-pixel "
                         "logits [1, 4, 64, 64] for synthetic shapes; train with edgekit.zoo.segmentation.train",
             processing={"preprocess": _SHAPES_IMAGE, "labels": ["background", *_SHAPES]}),
    ZooEntry("gan_discriminator", "generative:gan_discriminator", (("image", (1, 1, 28, 28), "float32"),),
             ("score",), "gan", description="GAN discriminator: Conv, LeakyReLU, Sigmoid"),
]}


def get(name: str) -> ZooEntry:
    from edgekit.errors import UsageError
    if name not in ZOO:
        raise UsageError(f"There is no zoo model named '{name}'.", hint=f"Choose one of: {', '.join(ZOO)}.")
    return ZOO[name]
