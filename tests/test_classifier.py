import copy

import torch

from binplay.config import ClassifierConfig
from binplay.models.classifier import LeNet
from binplay.scoring import class_mask, masked_logits, soft_targets
from binplay.strategies.base import soft_target_batches
from binplay.train.classifier import (
    classifier_epoch,
    distillation_loss,
    past_per_batch,
    replay_loss,
)


def test_soft_targets_come_from_the_frozen_copy():
    torch.manual_seed(0)
    live = LeNet((1, 28, 28), 4)
    frozen = copy.deepcopy(live).eval()
    images = torch.rand(16, 1, 28, 28)
    old = class_mask([0, 1], 4)
    before = soft_targets(frozen, images, old)
    cfg = ClassifierConfig(batch_size=8, epochs=1)
    opt = torch.optim.SGD(live.parameters(), lr=0.5)
    past = soft_target_batches(lambda gen: images[:8], frozen, old, hard=False)
    classifier_epoch(live, opt=opt, inputs=torch.rand(8, 1, 28, 28), labels=torch.tensor([2, 3] * 4),
                     cfg=cfg, seen=class_mask([0, 1, 2, 3], 4), past=past, n_past=8,
                     gen=torch.Generator().manual_seed(0), steps=3, batch=8)
    after = soft_targets(frozen, images, old)
    assert torch.equal(before, after)  # training the live model left the targets alone
    live.eval()
    live_probs = torch.softmax(masked_logits(live(images), old), dim=1)
    assert not torch.allclose(live_probs, before)  # ...while the live model did change
    assert torch.allclose(before.sum(dim=1), torch.ones(16))
    assert float(before[:, 2:].abs().sum()) == 0.0  # no mass on classes not yet seen


def test_hard_targets_are_one_hot_argmax():
    torch.manual_seed(0)
    model = LeNet((1, 28, 28), 3).eval()
    images = torch.rand(5, 1, 28, 28)
    soft = soft_targets(model, images, class_mask([0, 1, 2], 3))
    hard = soft_targets(model, images, class_mask([0, 1, 2], 3), hard=True)
    assert torch.equal(hard.argmax(dim=1), soft.argmax(dim=1))
    assert torch.equal(hard.sum(dim=1), torch.ones(5))


def test_soft_cross_entropy_minimised_at_target():
    target = torch.tensor([[0.7, 0.3, 0.0]])
    mask = class_mask([0, 1], 3)
    at_target = replay_loss(masked_logits(torch.log(target + 1e-12), mask), target, "cross_entropy")
    elsewhere = replay_loss(masked_logits(torch.tensor([[0.0, 2.0, 0.0]]), mask), target,
                            "cross_entropy")
    assert float(at_target) < float(elsewhere)
    assert torch.isfinite(at_target)


def test_balanced_past_share():
    cfg = ClassifierConfig(batch_size=100)
    assert past_per_batch(cfg, 0) == 0
    assert past_per_batch(cfg, 1) == 100  # one past task : one current task
    assert past_per_batch(cfg, 4) == 400
    assert past_per_batch(ClassifierConfig(batch_size=100, past_fraction=0.5), 4) == 100


def test_distillation_on_current_inputs_keeps_the_old_class_distribution():
    """classifier.distill_current: KL over the old classes only, zero where the student
    agrees with the teacher there (whatever it says about the new classes), and training
    with it keeps the old-class distribution on the current images closer to the teacher's."""
    torch.manual_seed(0)
    old = class_mask([0, 1, 2], 5)
    teacher = torch.randn(6, 5)
    student = teacher.clone()
    student[:, 3:] += 10.0  # new classes only
    assert float(distillation_loss(student, teacher, old)) < 1e-6
    student[:, 0] += 3.0
    assert float(distillation_loss(student, teacher, old)) > 0.1

    def train(weight: float) -> float:
        torch.manual_seed(1)
        frozen = LeNet((1, 28, 28), 5).eval()
        with torch.no_grad():  # a teacher with opinions about the old classes
            frozen.head[-1].weight.mul_(20)
        live = copy.deepcopy(frozen).train()
        images = torch.rand(16, 1, 28, 28)
        opt = torch.optim.SGD(live.parameters(), lr=0.05)
        classifier_epoch(live, opt=opt, inputs=images, labels=torch.tensor([3, 4] * 8),
                         cfg=ClassifierConfig(batch_size=16, distill_current=weight),
                         seen=class_mask([0, 1, 2, 3, 4], 5), past=None, n_past=0,
                         gen=torch.Generator().manual_seed(0), steps=20, batch=16,
                         teacher=frozen, old=old)
        live.eval()
        with torch.no_grad():
            return float(distillation_loss(live(images), frozen(images), old))

    without, with_ = train(0.0), train(1.0)
    assert with_ < 0.5 * without, (with_, without)


def test_current_loss_over_new_classes_leaves_old_logits_alone():
    """classifier.current_loss_classes: new (ER-ACE): the current samples' cross-entropy
    scores only the task's classes, so one step on current images moves no old class's
    output row; over every seen class it does. new_on_real does so for real images only:
    reconstructions (the leading inputs) still score every class, and without
    reconstructions it is the loss over every seen class; new_on_unmemorised for
    the trailing unmemorised images only. The first task has no
    old classes: every setting is the same loss there."""
    old, seen = class_mask([0, 1, 2], 5), class_mask([0, 1, 2, 3, 4], 5)

    def old_rows_moved(classes: str, old_mask: torch.Tensor, reconstructed: int = 0,
                       unmemorised: int = 0) -> float:
        torch.manual_seed(0)
        live = LeNet((1, 28, 28), 5, dropout=0.0)
        before = live.head[-1].weight[:3].detach().clone()
        classifier_epoch(live, opt=torch.optim.SGD(live.parameters(), lr=0.5),
                         inputs=torch.rand(16, 1, 28, 28), labels=torch.tensor([3, 4] * 8),
                         cfg=ClassifierConfig(batch_size=16, current_loss_classes=classes),
                         seen=seen, past=None, n_past=0, gen=torch.Generator().manual_seed(0),
                         steps=1, batch=16, old=old_mask, reconstructed=reconstructed,
                         unmemorised=unmemorised)
        return float((live.head[-1].weight[:3].detach() - before).abs().max())

    assert old_rows_moved("new", old) == 0.0
    assert old_rows_moved("seen", old) > 1e-4
    # All 16 inputs real: no reconstructions keep every class, so new_on_real scores every
    # seen class (a baseline under the FMNIST preset must not turn into ER-ACE).
    assert old_rows_moved("new_on_real", old, reconstructed=0) == old_rows_moved("seen", old)
    assert old_rows_moved("new_on_real", old, reconstructed=8) > 1e-4  # 8 reconstructions
    assert old_rows_moved("new_on_real", old, reconstructed=16) == old_rows_moved("seen", old)
    assert old_rows_moved("new_on_unmemorised", old, unmemorised=16) == 0.0  # all 16 unmemorised
    assert old_rows_moved("new_on_unmemorised", old, unmemorised=8) > 1e-4
    assert old_rows_moved("new_on_unmemorised", old) == old_rows_moved("seen", old)
    none_old = class_mask([], 5)
    assert old_rows_moved("new", none_old) == old_rows_moved("seen", none_old) > 1e-4
