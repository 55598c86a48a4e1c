"""Generative zoo models: convolutional autoencoder, VAE encoder/decoder, GAN generator/discriminator."""
import torch
from torch import nn


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Sigmoid())

    def forward(self, image):
        return self.decoder(self.encoder(image))


def autoencoder() -> nn.Module:
    torch.manual_seed(0)
    return AutoEncoder().eval()


LATENT = 16


class VaeEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                  nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU())
        self.mean = nn.Linear(64, LATENT)
        self.log_var = nn.Linear(64, LATENT)

    def forward(self, image):
        h = self.body(image)
        return self.mean(h), self.log_var(h)


class VaeDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(LATENT, 32 * 7 * 7), nn.ReLU())
        self.body = nn.Sequential(nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(16, 1, 4, 2, 1),
                                  nn.Sigmoid())

    def forward(self, z):
        return self.body(self.fc(z).reshape(-1, 32, 7, 7))


def vae_encoder() -> nn.Module:
    torch.manual_seed(0)
    return VaeEncoder().eval()


def vae_decoder() -> nn.Module:
    torch.manual_seed(1)
    return VaeDecoder().eval()


class Generator(nn.Module):
    def __init__(self, latent: int = 64):
        super().__init__()
        self.fc = nn.Linear(latent, 64 * 7 * 7)
        self.body = nn.Sequential(
            nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(32, 1, 3, 1, 1), nn.Tanh())

    def forward(self, z):
        return self.body(self.fc(z).reshape(-1, 64, 7, 7))


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 4, 2, 1),
                                  nn.BatchNorm2d(64), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64 * 7 * 7, 1),
                                  nn.Sigmoid())

    def forward(self, image):
        return self.body(image)


def gan_generator() -> nn.Module:
    torch.manual_seed(0)
    return Generator().eval()


def gan_discriminator() -> nn.Module:
    torch.manual_seed(0)
    return Discriminator().eval()
