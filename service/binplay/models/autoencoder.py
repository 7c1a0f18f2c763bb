"""Encoder and decoder of the binary latent autoencoder.

``paper``: the appendix's networks (28x28x1: 3 stride-2 convs 32/64/128 -> 2048 ->
latent; decoder 2 FC of 800 then transposed convs 32/128/192 and a 4x4 output
layer; 32x32x3: the wider CIFAR decoder, FC 1500 -> 6144, transposed convs
512/768/640). Heavy on a CPU (~0.25 GMAC per MNIST sample).
``compact``: two stride-2 convs / two transposed convs around one FC layer, about
the paper decoder's parameter count at a small fraction of its compute.
Image sizes: ``paper`` only 28x28 and 32x32 (its decoders are the appendix's); ``compact``
and ``mlp`` are computed from the configured size, any H and W that are multiples of 4
(28x28 and 32x32 build exactly the layers they always did). Other sizes are refused in
one line (``run_models.check_models_fit`` makes it a ConfigError, exit 2).
``mlp``: the compact encoder; a wider decoder, code -> ``hidden`` -> (``channels``, H/4,
W/4) -> the compact decoder's two transposed convs (lever 3 of issue 14: the prototype's
``--dec-arch mlp:512:128``). Most of its bytes sit in the second FC layer, which int8
storage (binplay.models.quantise) shrinks fourfold.
Images are floats in [0, 1]; decoders end in a sigmoid.
"""

from __future__ import annotations

import torch
from torch import nn


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class Encoder(nn.Module):
    def __init__(self, convs: nn.Sequential, feature_dim: int, latent_dim: int):
        super().__init__()
        self.convs = convs
        self.head = nn.Linear(feature_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x).flatten(1))


class Decoder(nn.Module):
    def __init__(self, fc: nn.Sequential, start_shape: tuple[int, int, int], deconvs: nn.Sequential):
        super().__init__()
        self.fc = fc
        self.start_shape = start_shape
        self.deconvs = deconvs

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        h = self.fc(code).view(len(code), *self.start_shape)
        return torch.sigmoid(self.deconvs(h))


def _conv_stack(channels: list[int], kernel: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_out, kernel, stride=2, padding=1),
                   nn.BatchNorm2d(c_out), _act()]
    return nn.Sequential(*layers)


def _deconv(c_in: int, c_out: int, k: int, s: int, p: int, op: int = 0, last: bool = False):
    conv = nn.ConvTranspose2d(c_in, c_out, k, stride=s, padding=p, output_padding=op)
    return [conv] if last else [conv, nn.BatchNorm2d(c_out), _act()]


def _paper_size(shape: tuple[int, int, int]) -> int:
    """The paper preset's decoders are the appendix's, hand-sized for 28x28 and 32x32."""
    if shape[1:] in ((28, 28), (32, 32)):
        return shape[1]
    raise ValueError(f"autoencoder preset paper takes 28x28 or 32x32 images, got {shape[1]}x{shape[2]} "
                     f"(the compact and mlp presets take any H and W that are multiples of 4)")


def _quarter(shape: tuple[int, int, int]) -> tuple[int, int]:
    """(H/4, W/4): the compact and mlp decoders double a map twice (two stride-2 transposed
    convs), so H and W must be multiples of 4; the encoders' two stride-2 convs then give
    exactly H/4 x W/4 (28 -> 7, 32 -> 8, 64 -> 16)."""
    _, height, width = shape
    if height % 4 or width % 4 or height < 8 or width < 8:
        raise ValueError(f"autoencoder presets compact and mlp take H and W that are multiples "
                         f"of 4 (at least 8), got {height}x{width}")
    return height // 4, width // 4


def paper_autoencoder(shape: tuple[int, int, int], latent_dim: int) -> tuple[Encoder, Decoder]:
    channels = shape[0]
    size = _paper_size(shape)
    encoder = Encoder(_conv_stack([channels, 32, 64, 128], 3), 2048, latent_dim)
    if size == 28:
        # 800 -> (32, 5, 5) -> 7 -> 14 -> 27 -> 28, i.e. 192 channels at 27x27
        # (docs/ALGORITHM.md, "Model sizes and compute").
        fc = nn.Sequential(nn.Linear(latent_dim, 800), _act(), nn.Linear(800, 800), _act())
        deconvs = nn.Sequential(*_deconv(32, 32, 3, 2, 2), *_deconv(32, 128, 3, 2, 1, 1),
                                *_deconv(128, 192, 3, 2, 1), *_deconv(192, channels, 4, 1, 1, last=True))
        return encoder, Decoder(fc, (32, 5, 5), deconvs)
    # CIFAR: 1500 -> 6144 = (96, 8, 8) -> 13 -> 26 -> 29 -> 32.
    fc = nn.Sequential(nn.Linear(latent_dim, 1500), _act(), nn.Linear(1500, 6144), _act())
    deconvs = nn.Sequential(*_deconv(96, 512, 3, 2, 2), *_deconv(512, 768, 4, 2, 1),
                            *_deconv(768, 640, 4, 1, 0), *_deconv(640, channels, 4, 1, 0, last=True))
    return encoder, Decoder(fc, (96, 8, 8), deconvs)


def compact_autoencoder(shape: tuple[int, int, int], latent_dim: int,
                        width: int) -> tuple[Encoder, Decoder]:
    channels = shape[0]
    qh, qw = _quarter(shape)
    encoder = Encoder(_conv_stack([channels, width // 2, width], 4), width * qh * qw, latent_dim)
    start = (2 * width, qh, qw)
    fc = nn.Sequential(nn.Linear(latent_dim, 2 * width * qh * qw), _act())
    deconvs = nn.Sequential(*_deconv(2 * width, width, 4, 2, 1),
                            *_deconv(width, channels, 4, 2, 1, last=True))
    return encoder, Decoder(fc, start, deconvs)


def mlp_autoencoder(shape: tuple[int, int, int], latent_dim: int, width: int, hidden: int,
                    channels: int) -> tuple[Encoder, Decoder]:
    """Compact encoder; decoder with a hidden FC layer before the (channels, H/4, W/4) map.

    The same two stride-2 transposed convs bring H/4 x W/4 back to H x W, so any H and W
    that are multiples of 4 work (28x28: a 7x7 map; 32x32: 8x8; 64x48: 16x12).
    """
    encoder, _ = compact_autoencoder(shape, latent_dim, width)
    qh, qw = _quarter(shape)
    fc = nn.Sequential(nn.Linear(latent_dim, hidden), _act(),
                       nn.Linear(hidden, channels * qh * qw), _act())
    deconvs = nn.Sequential(*_deconv(channels, width, 4, 2, 1),
                            *_deconv(width, shape[0], 4, 2, 1, last=True))
    return encoder, Decoder(fc, (channels, qh, qw), deconvs)


def build_autoencoder(preset: str, shape: tuple[int, int, int], latent_dim: int,
                      width: int = 64, hidden: int = 512,
                      channels: int = 128) -> tuple[Encoder, Decoder]:
    """``hidden`` and ``channels`` size the ``mlp`` decoder only."""
    if preset == "paper":
        return paper_autoencoder(shape, latent_dim)
    if preset == "compact":
        return compact_autoencoder(shape, latent_dim, width)
    if preset == "mlp":
        return mlp_autoencoder(shape, latent_dim, width, hidden, channels)
    raise ValueError(f"autoencoder.preset: unknown preset '{preset}'")


def parameter_megabytes(module: nn.Module) -> float:
    """fp32 size of the parameters that must be kept (what the paper's Table 3 counts)."""
    return sum(p.numel() for p in module.parameters()) * 4 / 2**20
