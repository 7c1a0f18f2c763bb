"""The VAE generator of the deep generative replay baseline (Shin et al. 2017, DGR).

DGR keeps a generator and replays its samples while the next task is learnt. Its whole
VAE goes on training from one task to the next, so the state carries encoder and decoder,
and both are its memory: to compare it with BinPlay at *equal memory*, ``build_vae`` picks
the widest VAE whose carried bytes fit the budget. The architecture mirrors the
``compact`` autoencoder (two stride-2 convs / one FC + two transposed convs,
BatchNorm and LeakyReLU) so that the comparison is about the replay scheme, not
the network family. Images are floats in [0, 1]; the decoder ends in a sigmoid and
is trained with Bernoulli (binary cross-entropy) likelihood.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

MIN_WIDTH = 4


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def _quarter(shape: tuple[int, int, int]) -> tuple[int, int]:
    """(H/4, W/4): the map after two stride-2 convs, which two stride-2 transposed convs
    double back, so H and W must be multiples of 4 (28 -> 7, 32 -> 8, 64 -> 16)."""
    channels, height, width = shape
    if channels not in (1, 3) or height % 4 or width % 4 or height < 8 or width < 8:
        raise ValueError(f"VAE takes 1 or 3 channels and H, W multiples of 4 (at least 8), "
                         f"got {shape}")
    return height // 4, width // 4


class VAEDecoder(nn.Module):
    """z -> Linear -> (2w, H/4, W/4) -> ConvT(2w -> w) -> ConvT(w -> C) -> sigmoid."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, width: int):
        super().__init__()
        qh, qw = _quarter(shape)
        self.start_shape = (2 * width, qh, qw)
        self.fc = nn.Sequential(nn.Linear(latent_dim, 2 * width * qh * qw), _act())
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.BatchNorm2d(width), _act(),
            nn.ConvTranspose2d(width, shape[0], 4, stride=2, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(len(z), *self.start_shape)
        return torch.sigmoid(self.deconvs(h))


class VAEEncoder(nn.Module):
    """x -> two stride-2 convs (w/2, w) -> Linear -> (mu, logvar)."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int, width: int):
        super().__init__()
        qh, qw = _quarter(shape)
        half = max(1, width // 2)
        self.convs = nn.Sequential(
            nn.Conv2d(shape[0], half, 4, stride=2, padding=1), nn.BatchNorm2d(half), _act(),
            nn.Conv2d(half, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), _act())
        self.head = nn.Linear(width * qh * qw, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.convs(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar


class VAE(nn.Module):
    """Variational autoencoder; ``decoder`` is the generator DGR keeps between tasks."""

    def __init__(self, shape: tuple[int, int, int], latent_dim: int = 32, width: int = 64):
        super().__init__()
        self.shape = tuple(shape)
        self.latent_dim = latent_dim
        self.width = width
        self.encoder = VAEEncoder(self.shape, latent_dim, width)
        self.decoder = VAEDecoder(self.shape, latent_dim, width)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised pass; the noise comes from the global RNG (torch.manual_seed)."""
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar


def _module_bytes(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) * 4


def decoder_bytes(vae: VAE) -> int:
    """fp32 bytes of the decoder's parameters: the generative memory DGR must keep.

    Counted like BinPlay's ``parameter_megabytes`` (parameters only; BatchNorm's running
    statistics add 2 * width floats, negligible and left out on both sides).
    """
    return _module_bytes(vae.decoder)


def carried_vae_bytes(vae: nn.Module) -> int:
    """Bytes of the whole VAE as DGR's state carries it between tasks: every tensor of its
    state dict (encoder and decoder both keep training across tasks, so both are memory)."""
    return sum(t.numel() * t.element_size() for t in vae.state_dict().values())


def _decoder_bytes_at(shape: tuple[int, int, int], latent_dim: int, width: int) -> int:
    with torch.device("meta"):  # count without allocating: widths can be large
        return carried_vae_bytes(VAE(shape, latent_dim, width))


def build_vae(shape: tuple[int, int, int], budget_bytes: int, latent_dim: int = 32) -> VAE:
    """The widest VAE whose carried bytes (encoder and decoder, ``carried_vae_bytes``) fit
    ``budget_bytes``: equal memory with BinPlay, counted as ``binplay.memory`` counts it.

    The size grows strictly with the width, so the largest fitting integer width is
    found by doubling then bisection over exact counts of the built module.
    """
    shape = tuple(shape)
    _quarter(shape)
    if _decoder_bytes_at(shape, latent_dim, MIN_WIDTH) > budget_bytes:
        need = _decoder_bytes_at(shape, latent_dim, MIN_WIDTH)
        raise ValueError(f"VAE budget {budget_bytes} B is below the smallest VAE "
                         f"(width {MIN_WIDTH}: {need} B) for shape {shape}")
    lo, hi = MIN_WIDTH, 2 * MIN_WIDTH  # invariant: lo fits
    while _decoder_bytes_at(shape, latent_dim, hi) <= budget_bytes:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # lo fits, hi does not
        mid = (lo + hi) // 2
        if _decoder_bytes_at(shape, latent_dim, mid) <= budget_bytes:
            lo = mid
        else:
            hi = mid
    return VAE(shape, latent_dim, lo)


@torch.no_grad()
def sample(vae: VAE, n: int, generator: torch.Generator,
           device: torch.device | str = "cpu") -> torch.Tensor:
    """n images in [0, 1] decoded from z ~ N(0, I).

    z is drawn on the CPU from ``generator`` and then moved, so samples are the same on
    every device for a seed. Decoding runs in eval mode (BatchNorm running statistics,
    no batch coupling) and the caller's train/eval mode is restored.
    """
    z = torch.randn(n, vae.latent_dim, generator=generator).to(device)
    was_training = vae.training
    vae.eval()
    try:
        return vae.decode(z)
    finally:
        vae.train(was_training)


def frozen_copy(vae: VAE) -> VAE:
    """The generator of past tasks (DGR's previous scholar): a detached, eval-mode deep copy."""
    frozen = copy.deepcopy(vae).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen
