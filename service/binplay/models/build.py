"""BinPlay's autoencoder for a config, its stored size, and loading saved weights as stored.

A run's whole set of models (the strategy's generators and the classifier) is built by
``binplay.run_models``.
"""

from __future__ import annotations

import torch
from torch import nn

from binplay.config import BinPlayConfig
from binplay.models.autoencoder import Decoder, Encoder, build_autoencoder
from binplay.models.quantise import fp32_bytes, load_stored, stored_bytes

MB = 2**20


__all__ = ["MB", "fp32_bytes", "autoencoder_for", "binplay_decoder_bytes", "load_weights"]


def autoencoder_for(cfg: BinPlayConfig, shape: tuple[int, int, int]) -> tuple[Encoder, Decoder]:
    """The encoder and decoder the config's ``autoencoder`` section asks for."""
    a = cfg.autoencoder
    return build_autoencoder(a.preset, shape, cfg.codes.latent_dim, a.width, a.hidden, a.channels)


def binplay_decoder_bytes(cfg: BinPlayConfig, shape: tuple[int, int, int]) -> int:
    """Bytes of the BinPlay decoder this config builds, as stored (``autoencoder.store``).
    The count depends on the architecture only. (BinPlay's whole carried memory, the
    yardstick, is ``binplay.memory.binplay_carried_bytes``.)"""
    return stored_bytes(autoencoder_for(cfg, shape)[1], cfg.autoencoder.store)


def load_weights(models: dict[str, nn.Module], saved: dict[str, dict[str, torch.Tensor]]) -> None:
    """Load the saved weights of every model the state carries (as stored: packed decoders
    are unpacked); a model it does not carry (BinPlay's encoder) keeps its initialisation."""
    for name, module in models.items():
        if name in saved:
            load_stored(module, saved[name])
