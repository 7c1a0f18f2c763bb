"""`classifier.augment`: random crops (and flips) of every image a classifier step sees, for
every strategy alike; `none` leaves the batch and the epoch's random stream untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_engine import _run

from binplay.train.augment import PAD, augment


def _windows(image: torch.Tensor) -> list[torch.Tensor]:
    """Every H x W window of the zero-padded image: what a crop may return."""
    padded = F.pad(image, (PAD, PAD, PAD, PAD))
    h, w = image.shape[1:]
    return [padded[:, y:y + h, x:x + w] for y in range(2 * PAD + 1) for x in range(2 * PAD + 1)]


def _batch(n: int = 64) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(n, 3, 12, 10) + 0.1  # no zero pixel: padding shows where it enters


def test_none_returns_the_batch_and_draws_nothing():
    images, gen = _batch(), torch.Generator().manual_seed(3)
    before = gen.get_state()
    assert augment(images, "none", gen) is images
    assert torch.equal(gen.get_state(), before)


def test_crop_returns_a_shifted_window_of_each_image_with_varied_shifts():
    images = _batch()
    out = augment(images, "crop", torch.Generator().manual_seed(3))
    assert out.shape == images.shape
    shifts = []
    for image, crop in zip(images, out, strict=True):
        matches = [i for i, win in enumerate(_windows(image)) if torch.equal(win, crop)]
        assert matches, "a crop is not a window of its own padded image"
        shifts.append(matches[0])
    assert len(set(shifts)) > 10  # not one shift for the whole batch
    assert (out == 0).any()  # some shifts bring padding in
    again = augment(images, "crop", torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # the generator decides


def test_crop_flip_mirrors_about_half_of_the_images():
    images = _batch(200)
    out = augment(images, "crop_flip", torch.Generator().manual_seed(5))
    mirrored = 0
    for image, crop in zip(images, out, strict=True):
        plain = any(torch.equal(w, crop) for w in _windows(image))
        flipped = any(torch.equal(w, crop) for w in _windows(image.flip(2)))
        assert plain != flipped  # one or the other, never neither
        mirrored += flipped
    assert 60 < mirrored < 140


@pytest.mark.parametrize("strategy", ["er", "derpp"])  # the shared step (BinPlay's too) and DER++'s own
def test_the_classifier_sees_augmented_images_only_when_set(tiny, tmp_path, monkeypatch, strategy):
    """Whatever the strategy's step, the batch the classifier trains on is the augmented one:
    images shifted down bring zero padding in at the top (of the batches a run without the
    switch trains on, under 5% have an all-zero top row: checked when this test was written)."""
    from binplay.models import classifier as module

    seen: list[torch.Tensor] = []
    original = module.LeNet.forward

    def spy(self, x):
        if self.training:
            seen.append(x.detach().clone())
        return original(self, x)

    monkeypatch.setattr(module.LeNet, "forward", spy)
    _run(tiny(f"strategy={strategy}", "classifier.epochs=1", "classifier.augment=crop"), tmp_path)
    shifted_down = [(x[..., 0, :].abs().sum(dim=(1, 2)) == 0).float().mean() for x in seen]
    assert float(sum(shifted_down) / len(seen)) > 0.3  # expected: 4 shifts in 9
