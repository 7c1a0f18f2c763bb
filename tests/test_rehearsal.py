"""Self-rehearsal keeps task 0 alive in the decoder (issue: BinPlay core 1, acceptance 3).

Real MNIST, a small subset: the same two-task run with and without self-rehearsal.
With it, task 0's regenerated images must stay above a PSNR floor; without it they
must fall below, so the test fails if rehearsal breaks (or stops mattering).
"""

import pytest

from binplay.config import load_config
from binplay.context import TrainContext
from binplay.data.stream import build_stream
from binplay.engine import run_stream
from conftest import MIRROR, require

PSNR_FLOOR_DB = 16.0


def _task0_psnr_after_task1(tmp_path, rehearsal: bool) -> tuple[float, float]:
    cfg = load_config(None, [
        "stream.dataset=mnist", f"stream.data_root={MIRROR}", "stream.tasks=[[0,1],[2,3]]",
        "stream.train_per_class=300", "stream.test_per_class=50",
        "codes.bits_per_part=12", "codes.task_bits=8", "autoencoder.width=32",
        "autoencoder.warmup_epochs=1", "autoencoder.assignment_epochs=2",
        "autoencoder.decoder_epochs=25", "autoencoder.batch_size=64", "classifier.epochs=0",
        f"autoencoder.self_rehearsal={str(rehearsal).lower()}", "run.fidelity_samples=128",
    ])
    manifest = build_stream(cfg, tmp_path / "stream")
    state = run_stream(cfg, manifest, TrainContext(log=lambda line: None))
    fidelity = state["history"]["fidelity_psnr"]
    return fidelity[0][0], fidelity[1][0]


@pytest.mark.slow
def test_self_rehearsal_preserves_task0(tmp_path):
    require(MIRROR / "MNIST" / "raw", "MNIST mirror")
    before, with_rehearsal = _task0_psnr_after_task1(tmp_path / "on", True)
    _, without = _task0_psnr_after_task1(tmp_path / "off", False)
    print(f"task 0 PSNR: after task 0 {before:.2f} dB; after task 1 with rehearsal "
          f"{with_rehearsal:.2f} dB, without {without:.2f} dB")
    assert with_rehearsal > PSNR_FLOOR_DB > without
    assert with_rehearsal > without + 3.0
