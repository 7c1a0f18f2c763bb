"""The decoder phase's mix of past and current samples (docs/ALGORITHM.md, "Decoder self-rehearsal")."""

import pytest
import torch
from torch import nn

from binplay.codes import stream_codes
from binplay.config import AutoencoderConfig, BinPlayConfig, CodesConfig
from binplay.ledger import Ledger, TaskRecord
from binplay.replay import InlineReplay, ReplayFeed, ReplayJob, ReplayPlan
from binplay.train import autoencoder as ae

CODES = CodesConfig(bits_per_part=8, primes=[3, 5], task_bits=4, task_prime=7)


class CountingDecoder(nn.Module):
    """Linear decoder that counts inputs carrying task 0's prefix (past) vs task 3's."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(CODES.latent_dim, 4)
        self.past = self.current = 0
        self.prefix0 = stream_codes(torch.tensor([1]), torch.tensor([0]), CODES)[0, :4]

    def forward(self, codes):
        past = (codes[:, :4] == self.prefix0).all(dim=1)
        self.past += int(past.sum())
        self.current += int((~past).sum())
        return self.fc(codes).view(-1, 1, 2, 2)


def _task(first: int, n: int) -> ae.CurrentTask:
    index = torch.arange(first, first + n)
    return ae.CurrentTask(torch.rand(n, 1, 2, 2), stream_codes(index, torch.full_like(index, 3), CODES),
                          first, first + n - 1)


@pytest.mark.parametrize("share, expected_past", [(None, 0.8), (0.5, 0.5), (0.25, 0.75)])
def test_decoder_batches_follow_the_configured_share(share, expected_past):
    task = _task(first=201, n=50)  # indices 1..200 are past: uniform draws give 80% past
    cfg = AutoencoderConfig(decoder_current_share=share)
    assert ae.decoder_past_share(task, cfg) == pytest.approx(expected_past)
    ledger = Ledger()
    ledger.add(TaskRecord(0, 1, 200, (0, 1)))
    decoder, frozen = CountingDecoder(), CountingDecoder()
    source = InlineReplay()
    source.bind(ReplayJob(BinPlayConfig(codes=CODES), (1, 2, 2), 2, ledger, frozen))
    plan = ReplayPlan(ledger, (0, 1, "decoder", 0, 0), batch=100,
                      share=ae.decoder_past_share(task, cfg))
    ae.decoder_epoch(decoder, opt=torch.optim.SGD(decoder.parameters(), 0.01), task=task,
                     mapping=torch.arange(50), past=ReplayFeed(source, plan, 40, 2),
                     gen=torch.Generator().manual_seed(0), steps=40, batch=100)
    observed = decoder.past / (decoder.past + decoder.current)
    assert observed == pytest.approx(expected_past, abs=0.03)


def test_first_task_has_no_past_share():
    cfg = AutoencoderConfig(decoder_current_share=0.5)
    assert ae.decoder_past_share(_task(first=1, n=50), cfg) == 0.0
