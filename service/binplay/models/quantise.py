"""The decoder as stored between tasks: fp32, bf16, int8 or int4 (lever 6 of issue 14).

BinPlay's memory is its decoder, so what counts is the bytes it is kept in. ``pack``
turns a decoder into the tensors that would be written (int8: the weight matrices and
kernels as int8 with one fp32 scale per output channel; bf16: those weights as bf16;
biases, norm parameters and float buffers such as BatchNorm's running statistics stay
fp32 in both, as the issue-14 prototype counted them);
``unpack`` gives back the fp32 values a decoder computes with. ``store_`` replaces a
decoder's weights in place by ``unpack(pack(...))``, so the frozen copy that regenerates
past samples in the next task computes with exactly what the stored bytes hold.

int4 (beyond lever 6, which asked for int8): symmetric values in [-7, 7], two to a byte,
with one fp16 scale per output channel and group of ``INT4_GROUP`` consecutive inputs
(one scale per output channel over 512+ inputs is too coarse at 4 bits; the groups cost
2 bytes per 64 weights, 6% on top of their 32 bytes of nibbles). A small int32 tensor records the
weight's shape and channel dimension, and is counted like every other stored byte.

fp32 is today's accounting: parameters only, at 4 bytes (``fp32_bytes``), so the
equal-memory yardstick of earlier results does not move; nothing is changed in place.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

StoreKind = Literal["fp32", "bf16", "int8", "int4"]
SCALE = ".scale"  # suffix of an int8 weight's per-channel (int4: per-group) scales
LAYOUT = ".layout"  # suffix of an int4 weight's [channel dim, *shape]
INT8_MAX = 127  # symmetric range [-127, 127]: zero is exact and no sign asymmetry
INT4_MAX = 7  # symmetric [-7, 7], stored offset by 8 as a nibble
INT4_GROUP = 64  # consecutive inputs of one output channel sharing an int4 scale
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def fp32_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters stored as fp32 (what the paper's Table 3 counts)."""
    return sum(p.numel() for p in module.parameters()) * 4


def _channel_dims(module: nn.Module) -> dict[str, int]:
    """Output-channel dimension of every weight with more than one dimension.

    Linear and Conv2d weights are (out, in, ...); ConvTranspose2d's are (in, out, kH, kW),
    so their output channels sit on dim 1.
    """
    dims: dict[str, int] = {}
    for prefix, layer in module.named_modules():
        for name, p in layer.named_parameters(recurse=False):
            if p.dim() > 1:
                full = f"{prefix}.{name}" if prefix else name
                transposed = isinstance(layer, TRANSPOSED) and name == "weight"
                dims[full] = 1 if transposed else 0
    return dims


def quantise_int8(weight: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-channel int8 along ``dim``: (int8 values, fp32 scales broadcastable)."""
    reduce = [d for d in range(weight.dim()) if d != dim]
    w = weight.detach().float()
    scale = w.abs().amax(dim=reduce, keepdim=True).clamp_min(1e-12) / INT8_MAX
    q = torch.round(w / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def quantise_int4(weight: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Symmetric int4 per output channel (``dim``) and group of ``INT4_GROUP`` inputs:
    (uint8 of two nibbles each, fp16 scales (out, groups), int32 layout [dim, *shape])."""
    rows = weight.detach().float().movedim(dim, 0)
    rows = rows.reshape(rows.shape[0], -1)
    rows = torch.nn.functional.pad(rows, (0, -rows.shape[1] % INT4_GROUP))
    groups = rows.reshape(rows.shape[0], -1, INT4_GROUP)
    tiny = torch.finfo(torch.float16).tiny  # keep an all-zero group's scale non-zero
    scale = (groups.abs().amax(-1, keepdim=True) / INT4_MAX).to(torch.float16).clamp_min(tiny)
    q = (torch.round(groups / scale.float()).clamp(-INT4_MAX, INT4_MAX) + 8).to(torch.uint8)
    q = q.reshape(rows.shape[0], -1)  # even length: INT4_GROUP is even
    nibbles = q[:, 0::2] | (q[:, 1::2] << 4)
    layout = torch.tensor([dim, *weight.shape], dtype=torch.int32)
    return nibbles, scale.squeeze(-1), layout


def dequantise_int4(nibbles: torch.Tensor, scale: torch.Tensor, layout: torch.Tensor) -> torch.Tensor:
    dim, *shape = layout.tolist()
    q = torch.stack([nibbles & 15, nibbles >> 4], dim=-1).reshape(nibbles.shape[0], -1)
    groups = (q.float() - 8).reshape(q.shape[0], -1, INT4_GROUP) * scale.float().unsqueeze(-1)
    moved = [shape[dim], *(n for i, n in enumerate(shape) if i != dim)]
    flat = groups.reshape(moved[0], -1)[:, :torch.Size(moved[1:]).numel()]  # drop the padding
    return flat.reshape(moved).movedim(0, dim).contiguous()


def pack(module: nn.Module, store: StoreKind) -> dict[str, torch.Tensor]:
    """The tensors that keep ``module`` at ``store`` precision, keyed by state-dict name."""
    dims = _channel_dims(module) if store != "fp32" else {}
    packed: dict[str, torch.Tensor] = {}
    for name, p in module.named_parameters():
        w = p.detach()
        if name not in dims:  # fp32 store, or a bias / norm parameter
            packed[name] = w.float().clone()
        elif store == "bf16":
            packed[name] = w.to(torch.bfloat16)
        elif store == "int4":
            packed[name], packed[name + SCALE], packed[name + LAYOUT] = quantise_int4(w, dims[name])
        else:
            packed[name], packed[name + SCALE] = quantise_int8(w, dims[name])
    if store != "fp32":  # fp32 keeps today's count: parameters only
        for name, b in module.named_buffers():
            if b.dtype.is_floating_point:  # running statistics; not the int batch counter
                packed[name] = b.detach().float().clone()
    return packed


def unpack(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp32 tensors a decoder computes with, from what ``pack`` wrote."""
    out: dict[str, torch.Tensor] = {}
    for name, t in packed.items():
        if name.endswith((SCALE, LAYOUT)):
            continue
        if t.dtype == torch.uint8:
            out[name] = dequantise_int4(t, packed[name + SCALE], packed[name + LAYOUT])
        elif t.dtype == torch.int8:
            out[name] = t.float() * packed[name + SCALE]
        else:
            out[name] = t.float()
    return out


def packed_bytes(packed: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in packed.values())


def stored_bytes(module: nn.Module, store: StoreKind) -> int:
    """Bytes ``module`` takes when kept at ``store`` precision (fp32: parameters only)."""
    if store == "fp32":
        return fp32_bytes(module)
    return packed_bytes(pack(module, store))


@torch.no_grad()
def store_(module: nn.Module, store: StoreKind) -> dict[str, torch.Tensor]:
    """Replace ``module``'s weights by their stored values; returns the packed tensors.

    fp32 leaves the module untouched (bit-identical to a run without the switch).
    """
    packed = pack(module, store)
    if store == "fp32":
        return packed
    values = unpack(packed)
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if name in values:
            t.copy_(values[name])
    return packed


def is_packed(weights: dict[str, torch.Tensor]) -> bool:
    """Whether a state dict holds packed (int8/int4/bf16) weights rather than fp32 ones."""
    return any(k.endswith((SCALE, LAYOUT)) or t.dtype == torch.bfloat16 for k, t in weights.items())


@torch.no_grad()
def load_stored(module: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load a state dict as saved: fp32 as it is, packed weights through ``unpack`` (each
    value cast to the module's own dtype, so integer counters come back exact)."""
    if not is_packed(weights):
        module.load_state_dict(weights)
        return
    values = unpack(weights)
    current = module.state_dict()
    missing = sorted(set(current) - set(values))
    if missing:
        raise KeyError(f"stored weights lack {missing[0]}")
    module.load_state_dict({k: values[k].to(v.dtype) for k, v in current.items()})
