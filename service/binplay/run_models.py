"""Build a run's models from its config: the strategy's own models and the classifier.

Every rank (and every job that reads a saved state) builds the same initial weights:
each model is seeded from the run seed and its own name, so the classifier starts
from the same weights whichever strategy runs beside it (fair baselines).
"""

from __future__ import annotations

import torch
from torch import nn

from binplay.config import BinPlayConfig, ConfigError
from binplay.models.classifier import build_classifier
from binplay.seeding import derived_seed
from binplay.strategies import make_strategy


def build_models(cfg: BinPlayConfig, image_shape: tuple[int, ...],
                 num_classes: int) -> dict[str, nn.Module]:
    """The strategy's own models (BinPlay's encoder and decoder, DGR's VAE), then the
    classifier, each seeded from the run seed and its own name."""
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    models = make_strategy(cfg).own_models(shape)
    torch.manual_seed(derived_seed(cfg.seed, "classifier"))
    c = cfg.classifier
    models["classifier"] = build_classifier(c.arch, shape, num_classes, c.dropout, c.norm, c.width)
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
