"""The decoder as stored (autoencoder.store): the bytes suffice, are counted, and are what
regenerates the past; the mlp decoder preset builds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_engine import _run
from torch import nn

from binplay.memory import MB, binplay_carried_bytes, budget_bytes
from binplay.models import quantise
from binplay.models.autoencoder import build_autoencoder
from binplay.models.build import autoencoder_for, binplay_decoder_bytes
from binplay.models.quantise import fp32_bytes, pack, packed_bytes, store_, stored_bytes, unpack
from binplay.strategies.binplay import BinPlayStrategy

SHAPE = (1, 28, 28)


def _decoder(preset: str = "mlp", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_autoencoder(preset, SHAPE, 20, width=8, hidden=32, channels=16)[1]


def _weights(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if v.dtype.is_floating_point}


@pytest.mark.parametrize("store", ["int8", "int4", "bf16"])
def test_pack_unpack_reproduces_the_stored_decoder_exactly(store):
    decoder = _decoder()
    packed = store_(decoder, store)
    values = unpack(packed)
    for name, t in _weights(decoder).items():
        assert torch.equal(values[name], t), name  # the stored bytes alone give the weights
    if store in ("int8", "int4"):
        kind = {"int8": torch.int8, "int4": torch.uint8}[store]
        assert {t.dtype for k, t in packed.items() if k.endswith("weight") and t.dim() > 1} \
            == {kind}
        # Storing again keeps the same integer values (scales may move by an ulp at most).
        again = pack(decoder, store)
        for name, t in packed.items():
            if t.dtype == kind:
                assert torch.equal(again[name], t), name
                assert torch.allclose(again[name + quantise.SCALE], packed[name + quantise.SCALE],
                                      rtol=1e-6, atol=0)


def test_int8_is_per_output_channel_and_close():
    decoder = _decoder()
    before = _weights(decoder)
    packed = store_(decoder, "int8")
    # ConvTranspose2d keeps its output channels on dim 1, Linear on dim 0.
    assert packed["deconvs.0.weight" + quantise.SCALE].shape == (1, 8, 1, 1)
    assert packed["fc.0.weight" + quantise.SCALE].shape == (32, 1)
    for name, w in before.items():
        after = decoder.state_dict()[name]
        if w.dim() > 1:
            assert not torch.equal(after, w)  # rounded
            assert (after - w).abs().max() <= w.abs().max() / 127 / 2 + 1e-7
        else:
            assert torch.equal(after, w)  # biases, norm parameters, running stats: fp32


def test_int4_is_grouped_per_output_channel_and_close():
    decoder = _decoder()
    before = _weights(decoder)
    packed = store_(decoder, "int4")
    # fc.2 is Linear(32 -> 16*7*7): 784 output channels, 32 inputs = one padded group each;
    # deconvs.0 is ConvTranspose2d(16 -> 8, 4x4): 8 output channels (dim 1) of 16*16 inputs.
    assert packed["fc.2.weight" + quantise.SCALE].shape == (784, 1)
    assert packed["deconvs.0.weight" + quantise.SCALE].shape == (8, 16 * 16 // quantise.INT4_GROUP)
    assert packed["fc.2.weight"].numel() == 784 * quantise.INT4_GROUP // 2  # two values a byte
    for name, w in before.items():
        after = decoder.state_dict()[name]
        if w.dim() > 1:
            assert not torch.equal(after, w)
            assert (after - w).abs().max() <= 1.01 * w.abs().max() / quantise.INT4_MAX / 2 + 1e-6
            assert torch.unique(after).numel() > 2 * quantise.INT4_MAX + 1  # a scale per group
        else:
            assert torch.equal(after, w)


def test_int4_round_trips_every_layout():
    torch.manual_seed(0)
    for shape, dim in [((5, 130), 0), ((3, 7, 4, 4), 1), ((6, 2, 3, 3), 0)]:
        w = torch.randn(shape)
        nibbles, scale, layout = quantise.quantise_int4(w, dim)
        back = quantise.dequantise_int4(nibbles, scale, layout)
        assert back.shape == w.shape
        groups = scale.float().repeat_interleave(quantise.INT4_GROUP, dim=1)
        bound = groups.max().item() / 2 + 1e-6
        assert (back - w).abs().max() <= bound
        assert torch.equal(quantise.dequantise_int4(*quantise.quantise_int4(back, dim)), back)


def test_fp32_store_is_a_no_op_and_keeps_todays_count():
    decoder = _decoder("compact")
    before = _weights(decoder)
    store_(decoder, "fp32")
    for name, t in _weights(decoder).items():
        assert torch.equal(t, before[name])
    assert stored_bytes(decoder, "fp32") == fp32_bytes(decoder)


def test_int8_bytes_are_a_quarter_of_fp32_weights_plus_scales_and_fp32_rest():
    decoder = _decoder()
    dims = [p for p in decoder.parameters() if p.dim() > 1]
    weights = sum(p.numel() for p in dims)
    rest = sum(p.numel() for p in decoder.parameters() if p.dim() == 1)
    buffers = sum(b.numel() for b in decoder.buffers() if b.dtype.is_floating_point)
    scales = sum(p.shape[1] if isinstance(m, nn.ConvTranspose2d) else p.shape[0]
                 for m in decoder.modules() for n, p in m.named_parameters(recurse=False)
                 if p.dim() > 1)
    expected = weights + 4 * (scales + rest + buffers)
    assert stored_bytes(decoder, "int8") == expected == packed_bytes(pack(decoder, "int8"))
    assert stored_bytes(decoder, "bf16") == 2 * weights + 4 * (rest + buffers)
    int4 = 4 * (rest + buffers)
    for m in decoder.modules():
        for p in m.parameters(recurse=False):
            if p.dim() > 1:
                out = p.shape[1] if isinstance(m, nn.ConvTranspose2d) else p.shape[0]
                groups = -(-p.numel() // out // quantise.INT4_GROUP)
                # nibbles + fp16 scales + the int32 layout [dim, *shape]
                int4 += out * groups * (quantise.INT4_GROUP // 2 + 2) + 4 * (p.dim() + 1)
    assert stored_bytes(decoder, "int4") == int4
    # The prototype's 512/128 decoder at 28x28 with 138 code bits: 3.31 MB stored.
    big = build_autoencoder("mlp", SHAPE, 138, width=64, hidden=512, channels=128)[1]
    assert abs(stored_bytes(big, "int8") / MB - 3.31) < 0.01
    assert stored_bytes(big, "int8") < 0.27 * fp32_bytes(big)
    assert stored_bytes(big, "int4") < 0.54 * stored_bytes(big, "int8")


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_mlp_decoder_maps_codes_to_images(shape):
    encoder, decoder = build_autoencoder("mlp", shape, 24, width=8, hidden=32, channels=16)
    out = decoder.eval()(torch.randn(5, 24))
    assert out.shape == (5, *shape) and bool(((out >= 0) & (out <= 1)).all())
    compact_encoder = build_autoencoder("compact", shape, 24, width=8)[0]
    assert [p.shape for p in encoder.parameters()] == [p.shape for p in compact_encoder.parameters()]


def _int_buffer_bytes(module: torch.nn.Module) -> int:
    return sum(b.numel() * b.element_size() for b in module.buffers() if not b.dtype.is_floating_point)


def test_auto_budget_is_what_binplay_carries(tiny):
    """auto = the decoder as stored (with its batch-norm counters), and the encoder only
    where it is carried; every tensor at its stored size."""
    cfg = tiny("autoencoder.preset=mlp", "autoencoder.hidden=32", "autoencoder.channels=16",
               "autoencoder.store=int8", "stream.image_shape=[1,28,28]")
    encoder, decoder = autoencoder_for(cfg, SHAPE)
    stored = stored_bytes(decoder, "int8") + _int_buffer_bytes(decoder)
    assert binplay_decoder_bytes(cfg, SHAPE) == stored_bytes(decoder, "int8")
    assert budget_bytes("auto", cfg, SHAPE) == binplay_carried_bytes(cfg, SHAPE) == stored
    carry = cfg.model_copy(update={"autoencoder": cfg.autoencoder.model_copy(
        update={"encoder_carry": True})})
    encoder_bytes = sum(t.numel() * t.element_size() for t in encoder.state_dict().values())
    assert budget_bytes("auto", carry, SHAPE) == stored + encoder_bytes
    fp32 = tiny("autoencoder.preset=mlp", "autoencoder.hidden=32", "autoencoder.channels=16")
    fp32_decoder = autoencoder_for(fp32, SHAPE)[1]
    assert budget_bytes("auto", fp32, SHAPE) == sum(
        t.numel() * t.element_size() for t in fp32_decoder.state_dict().values())
    assert budget_bytes("auto", fp32, SHAPE) >= fp32_bytes(fp32_decoder)
    assert stored < 0.4 * budget_bytes("auto", fp32, SHAPE)


@pytest.mark.parametrize("store", ["int8", "int4"])
def test_frozen_decoder_of_the_next_task_is_the_stored_one(store, tiny, tmp_path, monkeypatch):
    """Train two tasks with an int8 (int4) decoder: the frozen copy that regenerates task 1
    in task 2 equals unpack() of what was packed at the end of task 1's decoder phase."""
    packed: list[dict[str, torch.Tensor]] = []
    frozen: list[dict[str, torch.Tensor]] = []
    real_store, real_begin = quantise.store_, BinPlayStrategy.begin_task

    def recording_store(module, store):
        packed.append({k: v.clone() for k, v in real_store(module, store).items()})
        return packed[-1]

    def recording_begin(self, run, fresh):
        real_begin(self, run, fresh)
        if run.t == 1:
            frozen.append(_weights(self.frozen_decoder))

    monkeypatch.setattr("binplay.strategies.binplay.store_", recording_store)
    monkeypatch.setattr(BinPlayStrategy, "begin_task", recording_begin)
    cfg = tiny("autoencoder.preset=mlp", "autoencoder.hidden=32", "autoencoder.channels=16",
               f"autoencoder.store={store}", "autoencoder.decoder_epochs=2", "classifier.epochs=1")
    state = _run(cfg, tmp_path / store)
    assert len(packed) == 2  # once per task, not again at end_task
    values = unpack(packed[0])
    assert frozen and set(frozen[0]) == set(values)
    for name, t in frozen[0].items():
        assert torch.equal(t, values[name]), name
    carried = state["models"]["decoder"]  # the checkpoint holds the decoder as packed
    decoder = autoencoder_for(cfg, SHAPE)[1]
    params = dict(decoder.named_parameters())
    for name, t in packed[1].items():
        if name.split(".scale")[0].split(".layout")[0] in params:
            assert torch.equal(carried[name], t), name
    assert any(t.dtype in (torch.int8, torch.uint8) for t in carried.values())
    memory = BinPlayStrategy(cfg).memory(state, SHAPE)
    assert memory.kind == f"decoder ({store})"
    assert memory.bytes == packed_bytes(packed[1]) + _int_buffer_bytes(decoder)


def test_memory_mb_sizes_the_mlp_decoder_by_its_hidden_layer_in_stored_bytes(tiny):
    from binplay.compare import run_config, size_for_budget

    cfg = tiny("autoencoder.preset=mlp", "autoencoder.hidden=512", "autoencoder.channels=16",
               "autoencoder.store=int8", "stream.image_shape=[1,28,28]")
    budget = int(0.2 * MB)
    field, hidden = size_for_budget(cfg, budget)

    def at(h: int) -> int:
        return binplay_carried_bytes(cfg.model_copy(update={"autoencoder": cfg.autoencoder.model_copy(
            update={"hidden": h})}), SHAPE)

    assert field == "hidden" and at(hidden) <= budget < at(hidden + 1)
    assert hidden < 512  # the preset's own hidden layer would not fit: sizing shrank it
    sized = run_config(cfg.model_dump(mode="json"), "binplay", 0, 0.2, Path("runs"))
    assert sized.autoencoder.hidden == hidden and sized.autoencoder.width == cfg.autoencoder.width
