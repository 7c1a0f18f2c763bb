"""Build a run's models from its config: the classifier, and the strategy's generator.

Every rank (and every job that reads a saved state) builds the same initial weights:
each model is seeded from the run seed and its own name, so the classifier starts
from the same weights whichever strategy runs beside it (fair baselines).
"""

from __future__ import annotations

import torch
from torch import nn

from binplay.config import BinPlayConfig, ConfigError
from binplay.models.autoencoder import Decoder, Encoder, build_autoencoder
from binplay.models.classifier import LeNet
from binplay.models.quantise import fp32_bytes, load_stored, stored_bytes
from binplay.seeding import derived_seed

MB = 2**20


__all__ = ["MB", "fp32_bytes", "autoencoder_for", "binplay_decoder_bytes", "build_models",
           "check_models_fit", "load_weights"]


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


def build_models(cfg: BinPlayConfig, image_shape: tuple[int, ...],
                 num_classes: int) -> dict[str, nn.Module]:
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    models: dict[str, nn.Module] = {}
    if cfg.strategy == "binplay":
        torch.manual_seed(derived_seed(cfg.seed, "autoencoder"))
        models["encoder"], models["decoder"] = autoencoder_for(cfg, shape)
    elif cfg.strategy == "dgr":
        from binplay.models.vae import build_vae

        torch.manual_seed(derived_seed(cfg.seed, "generator"))
        from binplay.memory import budget_bytes

        models["generator"] = build_vae(shape, budget_bytes(cfg.dgr.memory_mb, cfg, shape),
                                        cfg.dgr.latent_dim)
    torch.manual_seed(derived_seed(cfg.seed, "classifier"))
    models["classifier"] = LeNet(shape, num_classes, cfg.classifier.dropout, cfg.classifier.norm)
    return models


@torch.no_grad()
def check_models_fit(cfg: BinPlayConfig, image_shape: tuple[int, ...], num_classes: int) -> None:
    """Build the models and push two blank images through them, before any training starts,
    so that a stream the models cannot take fails in one line on the driver."""
    shape = tuple(int(d) for d in image_shape)
    try:
        models = build_models(cfg, shape, num_classes)
        blank = torch.zeros(2, *shape)
        for name, model in models.items():
            model.eval()
            if name == "decoder":
                continue  # fed by the encoder below
            if name == "encoder":
                out = models["decoder"].eval()(model(blank))
            elif name == "generator":
                out = model(blank)[0]
            else:
                out = model(blank)
            if name in ("encoder", "generator") and tuple(out.shape[1:]) != shape:
                raise ValueError(f"{name} reconstructs {tuple(out.shape[1:])}")
    except (ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"stream: images of shape {shape} do not fit the "
                          f"{cfg.strategy} models ({first})") from None
