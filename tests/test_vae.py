"""The DGR baseline's VAE generator (binplay.models.vae, binplay.train.vae): sizing, training."""

import pytest
import torch

from binplay.models.vae import VAE, build_vae, carried_vae_bytes, decoder_bytes, frozen_copy, sample
from binplay.train.vae import vae_epoch, vae_loss

torch.set_num_threads(1)
MIB = 2**20
SHAPES = [(1, 28, 28), (3, 32, 32)]


def blobs(n: int, seed: int, shape: tuple[int, int, int] = (1, 28, 28)) -> torch.Tensor:
    """Gaussian blobs at random places: a learnable image set in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    c, size = shape[0], shape[1]
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.rand(n, 2, generator=g) * (size - 10) + 5
    d = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
    return torch.exp(-d / 12).unsqueeze(1).expand(n, c, size, size).contiguous()


def _train(past_share: float, frozen: VAE | None, epochs: int = 6, width: int = 8,
           images: torch.Tensor | None = None) -> tuple[VAE, list[dict[str, float]]]:
    torch.manual_seed(0)
    vae = VAE((1, 28, 28), latent_dim=8, width=width)
    opt = torch.optim.Adam(vae.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(0)
    x = blobs(64, 0) if images is None else images
    hist = [vae_epoch(vae, opt, x, frozen, past_share, gen, steps=4, batch=16) for _ in range(epochs)]
    return vae, hist


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("megabytes", [0.3, 1, 3.83, 8])
def test_decoder_is_the_largest_that_fits_the_budget(shape, megabytes):
    budget = int(megabytes * MIB)
    vae = build_vae(shape, budget)
    assert carried_vae_bytes(vae) <= budget  # the whole VAE: DGR carries encoder and decoder
    assert carried_vae_bytes(VAE(shape, 32, vae.width + 1)) > budget  # one wider would not fit
    assert decoder_bytes(vae) == 4 * sum(p.numel() for p in vae.decoder.parameters())
    assert carried_vae_bytes(vae) > decoder_bytes(vae) + 4 * sum(
        p.numel() for p in vae.encoder.parameters())  # and the batch-norm statistics


def test_budget_equal_to_a_width_picks_that_width():
    budget = carried_vae_bytes(VAE((1, 28, 28), 32, 50))
    assert build_vae((1, 28, 28), budget).width == 50
    assert build_vae((1, 28, 28), budget - 1).width == 49


def test_too_small_budget_raises():
    smallest = carried_vae_bytes(VAE((1, 28, 28), 32, 4))
    assert build_vae((1, 28, 28), smallest).width == 4
    with pytest.raises(ValueError, match="budget"):
        build_vae((1, 28, 28), smallest - 1)


def test_unsupported_shape_raises():
    with pytest.raises(ValueError):
        build_vae((1, 30, 30), 8 * MIB)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_loss_shapes(shape):
    vae = VAE(shape, latent_dim=8, width=8)
    x = blobs(5, 1, shape)
    recon, mu, logvar = vae(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (5, 8)
    assert vae.decode(torch.zeros(3, 8)).shape == (3, *shape)
    loss, rec, kl = (t.detach() for t in vae_loss(recon, x, mu, logvar))
    assert loss.shape == rec.shape == kl.shape == ()
    assert float(loss) == pytest.approx(float(rec) + float(kl))
    assert float(kl) >= 0


def test_kl_is_zero_at_the_prior():
    x = blobs(4, 2)
    _, _, kl = vae_loss(x.clamp(0.1, 0.9), x, torch.zeros(4, 8), torch.zeros(4, 8))
    assert float(kl) == 0.0
    _, _, kl = vae_loss(x.clamp(0.1, 0.9), x, torch.ones(4, 8), torch.zeros(4, 8))
    assert float(kl) == pytest.approx(0.5 * 8)  # 0.5 * ||mu||^2 per sample


def test_sample_is_reproducible_in_range_and_keeps_the_mode():
    vae = VAE((3, 32, 32), latent_dim=8, width=8)
    vae.train()
    a = sample(vae, 6, torch.Generator().manual_seed(7))
    b = sample(vae, 6, torch.Generator().manual_seed(7))
    c = sample(vae, 6, torch.Generator().manual_seed(8))
    assert a.shape == (6, 3, 32, 32)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert vae.training and not a.requires_grad
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(7))
    vae.eval()
    with torch.no_grad():
        assert torch.equal(a, vae.decode(z))  # z from the generator, BatchNorm on running stats
        assert not torch.allclose(a, vae.train().decode(z), atol=1e-3)  # batch stats would differ
    vae.eval()
    sample(vae, 2, torch.Generator().manual_seed(7))
    assert not vae.training


def test_frozen_copy_is_detached():
    vae = VAE((1, 28, 28), latent_dim=8, width=8)
    frozen = frozen_copy(vae)
    assert not frozen.training and vae.training
    assert all(not p.requires_grad for p in frozen.parameters())
    with torch.no_grad():
        vae.decoder.fc[0].bias.add_(1.0)
    assert not torch.equal(vae.decoder.fc[0].bias, frozen.decoder.fc[0].bias)


def test_epochs_reduce_the_loss():
    _, hist = _train(past_share=0.0, frozen=None)
    # measured: 538.7 -> 320.6 (-40%) over 6 epochs of 4 steps
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]
    assert all(set(h) == {"loss", "recon", "kl"} for h in hist)


def test_epochs_are_deterministic():
    assert _train(0.0, None, epochs=2)[1] == _train(0.0, None, epochs=2)[1]


def test_batches_mix_frozen_samples_in_the_configured_share():
    frozen = frozen_copy(VAE((1, 28, 28), latent_dim=8, width=8))
    rows: list[int] = []
    frozen.decoder.register_forward_hook(lambda _m, inp, _out: rows.append(len(inp[0])))
    _train(past_share=0.25, frozen=frozen, epochs=1)
    assert rows == [4] * 4  # round(16 * 0.25) per step, 4 steps
    rows.clear()
    _train(past_share=0.0, frozen=frozen, epochs=1)
    assert rows == []


def test_replay_pulls_the_generator_towards_the_frozen_one():
    """A frozen generator that draws white images brightens what the new VAE generates."""
    frozen = VAE((1, 28, 28), latent_dim=8, width=8)
    with torch.no_grad():
        frozen.decoder.deconvs[-1].bias.fill_(20.0)
    frozen = frozen_copy(frozen)
    assert float(sample(frozen, 8, torch.Generator().manual_seed(0)).min()) > 1 - 1e-6
    vae0, hist0 = _train(past_share=0.0, frozen=frozen, epochs=12)
    vae5, hist5 = _train(past_share=0.5, frozen=frozen, epochs=12)
    assert hist0 != hist5
    mean0 = float(sample(vae0, 64, torch.Generator().manual_seed(1)).mean())
    mean5 = float(sample(vae5, 64, torch.Generator().manual_seed(1)).mean())
    # measured: 0.16 without replay (blobs average 0.05), 0.50 with half the batches white
    assert mean5 > 2 * mean0
