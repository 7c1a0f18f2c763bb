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


def test_reduced_resnet18_fits_cifar_and_user_shapes_and_learns_a_batch():
    from binplay.models.resnet import ReducedResNet18

    torch.manual_seed(0)
    model = ReducedResNet18((3, 32, 32), 10)  # width 20: the reduced ResNet-18 of GEM and ER
    weights = sum(p.numel() for p in model.parameters())
    assert 1.0e6 < weights < 1.2e6, weights  # ~1.1 M published for width 20 (LeNet: ~0.3 M)
    assert model(torch.rand(4, 3, 32, 32)).shape == (4, 10)
    assert ReducedResNet18((1, 28, 28), 5, width=8)(torch.rand(2, 1, 28, 28)).shape == (2, 5)
    assert ReducedResNet18((3, 48, 64), 3, width=8)(torch.rand(2, 3, 48, 64)).shape == (2, 3)
    # A batch it can fit: 8 random images of 2 classes, memorised in a few Adam steps.
    small = ReducedResNet18((3, 16, 16), 2, width=8)
    x, y = torch.rand(8, 3, 16, 16), torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam(small.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(small(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 and bool((small(x).argmax(1) == y).all())


def test_classifier_arch_builds_the_named_net_and_leaves_lenet_configs_unchanged(tiny):
    from binplay.models.resnet import ReducedResNet18
    from binplay.run_models import build_models

    lenet, resnet = tiny(), tiny("classifier.arch=resnet18", "classifier.width=8")
    assert isinstance(build_models(lenet, (1, 28, 28), 4)["classifier"], LeNet)
    assert isinstance(build_models(resnet, (1, 28, 28), 4)["classifier"], ReducedResNet18)
    # arch at lenet is neutral: width is read by resnet18 only, so it moves no lenet fingerprint
    assert tiny("classifier.width=64").fingerprint() == lenet.fingerprint()
    assert resnet.fingerprint() != lenet.fingerprint()
    from binplay.config.model import fixed_settings

    assert {"classifier.arch", "classifier.width"} <= set(fixed_settings())


def test_a_run_with_the_resnet_classifier_learns_saves_and_counts_it(tiny, tmp_path):
    import json

    from binplay.inference import SavedRun
    from binplay.runner import train_in_process
    from binplay.storage import RunFiles

    cfg = tiny("classifier.arch=resnet18", "classifier.width=8", "classifier.norm=group")
    report = json.loads(open(train_in_process(cfg, RunFiles(cfg))).read())
    # The tiny stream is easy: a classifier that learns nothing scores 50% on its last task.
    assert report["accuracy_matrix"][0][0] > 90.0, report["accuracy_matrix"]
    run = SavedRun(tmp_path / "runs" / "tiny" / "checkpoint" / "state.pt")
    weights = sum(v.numel() for v in run.state["models"]["classifier"].values())
    assert weights > 100_000  # the ResNet's (~180 k at width 8), not LeNet's conv stack
