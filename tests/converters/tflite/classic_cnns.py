"""The classic ImageNet CNN architectures in plain PyTorch (no torchvision here), layer for layer as torchvision
and the papers define them, for the TFLite compiler's architecture tests and benchmarks.

Every factory takes no arguments (so `export("file.py:factory", ...)` can build it), seeds its weights and
randomizes BatchNorm statistics so folding is exercised. Small variants (`*_small`) keep the real widths and
block structure but fewer blocks, so tests stay fast; the full ones are for benchmarks at 224x224.
"""
from __future__ import annotations

import torch
from torch import nn


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded, non-trivial BatchNorm statistics and affine parameters (identity BN would hide folding bugs)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)
    return model.eval()


def _build(cls, *args, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return randomized(cls(*args, **kwargs), seed)


# ---------------------------------------------------------------- AlexNet (torchvision's single-tower variant)

class AlexNet(nn.Module):
    def __init__(self, num_classes: int = 1000, hidden: int = 4096):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(256 * 6 * 6, hidden), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def forward(self, image):
        return self.classifier(torch.flatten(self.avgpool(self.features(image)), 1))


def alexnet():
    return _build(AlexNet)


def alexnet_small():
    """AlexNet's convolutional trunk and pooling head with a 512-wide classifier (the 4096-wide one is 230 MB)."""
    return _build(AlexNet, hidden=512)


# ---------------------------------------------------------------- VGG

VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, cfg=VGG11, batch_norm: bool = False, num_classes: int = 1000, hidden: int = 4096):
        super().__init__()
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(c, v, 3, padding=1))
            layers += [nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
            c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(), nn.Linear(hidden, num_classes))

    def forward(self, image):
        return self.classifier(torch.flatten(self.avgpool(self.features(image)), 1))


def vgg11():
    return _build(VGG)


def vgg11_bn():
    return _build(VGG, batch_norm=True)


def vgg11_small():
    """VGG-11's 8 convolutions at real widths, 256-wide classifier (the 4096-wide one is 470 MB)."""
    return _build(VGG, hidden=256)


def vgg11_bn_small():
    return _build(VGG, batch_norm=True, hidden=256)


# ---------------------------------------------------------------- GoogLeNet / Inception-v1

class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four branches concatenated on channels; torchvision's 3x3 in the '5x5' branch is kept."""

    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


INCEPTIONS = [  # name, args; "M" = MaxPool(3, 2, ceil_mode)
    ("3a", (192, 64, 96, 128, 16, 32, 32)), ("3b", (256, 128, 128, 192, 32, 96, 64)), ("M", None),
    ("4a", (480, 192, 96, 208, 16, 48, 64)), ("4b", (512, 160, 112, 224, 24, 64, 64)),
    ("4c", (512, 128, 128, 256, 24, 64, 64)), ("4d", (512, 112, 144, 288, 32, 64, 64)),
    ("4e", (528, 256, 160, 320, 32, 128, 128)), ("M", None),
    ("5a", (832, 256, 160, 320, 32, 128, 128)), ("5b", (832, 384, 192, 384, 48, 128, 128))]


class GoogLeNet(nn.Module):
    """GoogLeNet without the auxiliary classifiers (inference) and without torchvision's input transform."""

    def __init__(self, inceptions=INCEPTIONS, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(
            BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3), nn.MaxPool2d(3, 2, ceil_mode=True),
            BasicConv2d(64, 64, kernel_size=1), BasicConv2d(64, 192, kernel_size=3, padding=1),
            nn.MaxPool2d(3, 2, ceil_mode=True))
        blocks = [nn.MaxPool2d(3, 2, ceil_mode=True) if name == "M" else Inception(*args) for name, args in inceptions]
        self.inceptions = nn.Sequential(*blocks)
        last = [args for name, args in inceptions if name != "M"][-1]
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(last[1] + last[3] + last[5] + last[6], num_classes)

    def forward(self, image):
        x = self.avgpool(self.inceptions(self.stem(image)))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def googlenet():
    return _build(GoogLeNet)


def googlenet_small():
    """Stem, inception 3a, 3b, max pool, 4a, and the head."""
    return _build(GoogLeNet, INCEPTIONS[:4])


# ---------------------------------------------------------------- SqueezeNet 1.1

class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand1x1, expand3x3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


class SqueezeNet11(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, num_classes, 1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, image):
        return torch.flatten(self.classifier(self.features(image)), 1)


def squeezenet1_1():
    return _build(SqueezeNet11)


# ---------------------------------------------------------------- ShuffleNetV2

def channel_shuffle(x, groups: int):
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, c, h, w)


def _conv_bn(cin, cout, kernel, stride=1, padding=0, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class ShuffleUnit(nn.Module):
    """torchvision's InvertedResidual of ShuffleNetV2: split (or duplicate), two branches, concat, shuffle."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        branch = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(*_conv_bn(cin, cin, 3, stride, 1, groups=cin, relu=False),
                                         *_conv_bn(cin, branch, 1))
        self.branch2 = nn.Sequential(*_conv_bn(cin if stride > 1 else branch, branch, 1),
                                     *_conv_bn(branch, branch, 3, stride, 1, groups=branch, relu=False),
                                     *_conv_bn(branch, branch, 1))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, repeats=(4, 8, 4), channels=(24, 48, 96, 192, 1024), num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Sequential(*_conv_bn(3, channels[0], 3, 2, 1))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, c = [], channels[0]
        for n, cout in zip(repeats, channels[1:4]):
            stages.append(nn.Sequential(ShuffleUnit(c, cout, 2), *[ShuffleUnit(cout, cout, 1) for _ in range(n - 1)]))
            c = cout
        self.stages = nn.Sequential(*stages)
        self.conv5 = nn.Sequential(*_conv_bn(c, channels[-1], 1))
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(self, image):
        x = self.conv5(self.stages(self.maxpool(self.conv1(image))))
        return self.fc(x.mean([2, 3]))


def shufflenet_v2_x0_5():
    return _build(ShuffleNetV2)


# ---------------------------------------------------------------- DenseNet

class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)  # torchvision concatenates all previous features for each layer
        x = self.conv1(torch.relu(self.norm1(x)))
        return self.conv2(torch.relu(self.norm2(x)))


class DenseBlock(nn.Module):
    def __init__(self, layers, cin, growth, bn_size):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth, bn_size) for i in range(layers))

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet(nn.Module):
    def __init__(self, growth=32, blocks=(6, 12, 24, 16), init_features=64, bn_size=4, num_classes=1000):
        super().__init__()
        layers = [nn.Conv2d(3, init_features, 7, 2, 3, bias=False), nn.BatchNorm2d(init_features),
                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        c = init_features
        for i, n in enumerate(blocks):
            layers.append(DenseBlock(n, c, growth, bn_size))
            c += n * growth
            if i != len(blocks) - 1:
                layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False),
                           nn.AvgPool2d(2, 2)]
                c //= 2
        layers.append(nn.BatchNorm2d(c))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, image):
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.features(image)), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def densenet121():
    return _build(DenseNet)


def densenet_small():
    """DenseNet-121's growth rate, bottlenecks and transitions with blocks of 2, 4, 6, 4 layers."""
    return _build(DenseNet, blocks=(2, 4, 6, 4))


# ---------------------------------------------------------------- EfficientNet-Lite0 and -B0

#: expand ratio, kernel, stride, output channels, repeats (EfficientNet-B0 baseline; Lite0 uses the same)
EFFICIENTNET_B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                   (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


class SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeeze):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(s))))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, (squeeze-excitation), 1x1 project, identity skip."""

    def __init__(self, cin, cout, expand, kernel, stride, lite: bool):
        super().__init__()
        act = nn.ReLU6 if lite else nn.SiLU
        mid = cin * expand
        layers = [] if expand == 1 else [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), act()]
        layers += [nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False), nn.BatchNorm2d(mid), act()]
        if not lite:
            layers.append(SqueezeExcitation(mid, max(1, cin // 4)))
        layers += [nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.skip else y


class EfficientNet(nn.Module):
    """lite=True: EfficientNet-Lite (ReLU6, no squeeze-excitation, 32-channel stem and 1280 head kept fixed)."""

    def __init__(self, config=EFFICIENTNET_B0, lite: bool = True, num_classes: int = 1000):
        super().__init__()
        act = nn.ReLU6 if lite else nn.SiLU
        layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), act()]
        c = 32
        for expand, kernel, stride, cout, repeats in config:
            for i in range(repeats):
                layers.append(MBConv(c, cout, expand, kernel, stride if i == 0 else 1, lite))
                c = cout
        layers += [nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280), act()]
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(1280, num_classes)

    def forward(self, image):
        x = nn.functional.adaptive_avg_pool2d(self.features(image), 1)
        return self.fc(self.dropout(torch.flatten(x, 1)))


def efficientnet_lite0():
    return _build(EfficientNet, lite=True)


def efficientnet_b0():
    return _build(EfficientNet, lite=False)


#: name -> (factory for tests, test input shape, factory for benchmarks); inputs are the smallest sensible sizes
ARCHITECTURES = {
    "alexnet": ("alexnet_small", "1x3x63x63", "alexnet"),
    "vgg11": ("vgg11_small", "1x3x32x32", "vgg11"),
    "vgg11_bn": ("vgg11_bn_small", "1x3x32x32", "vgg11_bn"),
    "googlenet": ("googlenet_small", "1x3x64x64", "googlenet"),
    "squeezenet1_1": ("squeezenet1_1", "1x3x64x64", "squeezenet1_1"),
    "shufflenet_v2_x0_5": ("shufflenet_v2_x0_5", "1x3x64x64", "shufflenet_v2_x0_5"),
    "densenet": ("densenet_small", "1x3x64x64", "densenet121"),
    "efficientnet_lite0": ("efficientnet_lite0", "1x3x64x64", "efficientnet_lite0"),
    "efficientnet_b0": ("efficientnet_b0", "1x3x64x64", "efficientnet_b0"),
}
