"""The split-CIFAR-10 `cpu` preset learns: the slow tier's check on a reduced real stream.

The preset as shipped (configs/split_cifar10.yaml), with only the stream and budget cut to
fit the test tier: its first 2 tasks, 100 training images a class (90 trained, 10 held out)
and 100 test images a class, the decoder phase at 20 epochs instead of 120, in-process on
one thread. Fine-tuning on the same stream forgets task 1 entirely (it scores only task 2),
so "learns" means: BinPlay keeps task 1 and stays far above fine-tuning's average.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from binplay.config import config_from_dict, for_strategy
from binplay.launch import train
from conftest import MIRROR, REPO, require

PRESET = REPO / "configs" / "split_cifar10.yaml"
REDUCED = ["stream.tasks=[[0,1],[2,3]]", "stream.train_per_class=100", "stream.test_per_class=100",
           "autoencoder.decoder_epochs=20", "ray.num_workers=0", "run.threads=1"]


def _report(strategy: str, tmp: Path) -> dict:
    tree = for_strategy(yaml.safe_load(PRESET.read_text()), strategy)
    cfg = config_from_dict(tree, REDUCED + [f"stream.data_root={MIRROR}", f"strategy={strategy}",
                                            f"name=cifar-{strategy}", f"run.storage_path={tmp}"])
    return json.loads(Path(train(cfg)).read_text())


@pytest.mark.slow
def test_cifar_preset_keeps_the_first_task_and_beats_finetuning_on_a_reduced_stream(tmp_path):
    require(MIRROR / "cifar10" / "train.parquet", "CIFAR-10 Parquet mirror")
    binplay, finetune = _report("binplay", tmp_path), _report("finetune", tmp_path)
    print(binplay["accuracy_matrix"], finetune["accuracy_matrix"])
    # Measured (2026-12-07, seed 0, this 2-core machine alone, 45 s): BinPlay 53.25 with
    # task 1 kept at 74.0 (PSNR 15-16 dB); fine-tuning 32.0, task 1 at 0.0 (with 40 decoder
    # epochs: 55.25 and 74.0); with the preset's feature loss since: 52.25, task 1 at 71.0.
    # A BinPlay that stopped rehearsing scores fine-tuning's 0 and 32.
    assert finetune["accuracy_matrix"][1][0] < 10.0  # the reference forgets, or it tells nothing
    assert binplay["accuracy_matrix"][1][0] > 31.0
    assert binplay["average_accuracy"] > finetune["average_accuracy"] + 13.0
