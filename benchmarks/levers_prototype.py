"""Research prototype behind docs/RESULTS.md's diagnostic and lever tables (issue 14).

A compact re-implementation of the BinPlay loop on the service's own pieces (codes,
CodeBook, compact autoencoder, LeNet), written to train several classifiers on ONE
autoencoder chain side by side: the diagnostic's four arms (old x new inputs: real or
regenerated x real or reconstructed) differ only in the classifier's inputs, which the
service cannot do in one run. The winning levers were then built into the service
(`stream.order`, `codes.class_bits`, `autoencoder.samples_per_class`,
`classifier.ledger_labels`, `classifier.norm`) and measured there again; this script is
kept so that every prototype number in RESULTS.md can be re-run:

    BINPLAY_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/levers_prototype.py \
        --name exp05 --train-per-class 0 --class-code onehot_notask --mem-per-class 500 \
        --dec-epochs 45 --clf regen:code:hard:gn,regen:code:soft:gn

One torch thread. Original images/labels of past indices are kept ONLY for measurement
(PSNR, class agreement under a CNN trained on real data) and for the diagnostic's 'real'
old inputs; no training arm of BinPlay reads them. Not a product path: research code.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)

from binplay.assignment import CodeBook, sign_agreement  # noqa: E402
from binplay.codes import index_codes, task_prefix  # noqa: E402
from binplay.data.sources import load_builtin  # noqa: E402
from binplay.models.autoencoder import Decoder, _act, _deconv, compact_autoencoder  # noqa: E402
from binplay.models.classifier import LeNet  # noqa: E402

TASKS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
M_BITS, PRIMES, TASK_BITS, TASK_PRIME, CLASS_PRIME = 16, [3, 5, 7, 11, 13, 17, 19, 23], 10, 29, 31


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--test-per-class", type=int, default=0, help="0 = full test set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class-code", default="none", choices=["none", "onehot", "prefix", "onehot_notask"])
    p.add_argument("--mem-per-class", type=int, default=0, help="0 = every sample gets a code")
    p.add_argument("--assign", default="greedy", choices=["greedy", "random"])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--assign-epochs", type=int, default=3)
    p.add_argument("--dec-epochs", type=int, default=15)
    p.add_argument("--dec-samples", type=int, default=0,
                   help="decoder samples per epoch (0 = 2 x memorised task size)")
    p.add_argument("--dec-share", type=float, default=0.5)
    p.add_argument("--dec-lr", type=float, default=1e-3)
    p.add_argument("--dec-arch", default="compact", help="compact | mlp:<hidden>:<ch> | wide:<w>")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--store", default="fp32", choices=["fp32", "bf16", "int8"])
    p.add_argument("--local-ae", type=int, default=0, help="epochs of a per-task local AE (0 = off)")
    p.add_argument("--local-latent", type=int, default=64)
    p.add_argument("--dec-target", default="real", choices=["real", "local"])
    p.add_argument("--cls-epochs", type=int, default=6)
    p.add_argument("--clf", default="regen:code:soft:bn",
                   help="comma list old_in:new_in:targets:norm[:recalc]; old_in regen|real; "
                        "new_in code|real|local|ae|blur; targets soft|hard; norm bn|gn|none")
    p.add_argument("--oracle-epochs", type=int, default=3)
    p.add_argument("--out", default="runs/levers")
    return p.parse_args()


# ----------------------------------------------------------------- data
def load(dataset, split, per_class, seed):
    name = {"mnist": "mnist", "fmnist": "fashion_mnist"}[dataset]
    s = load_builtin(name, split)  # BINPLAY_DATA_MIRROR, Debian's Fashion-MNIST, ...
    x, y = s.images, s.labels
    if per_class:
        g = torch.Generator().manual_seed(1234 + seed)
        perm = torch.randperm(len(y), generator=g)
        keep = torch.cat([perm[y[perm] == c][:per_class] for c in range(10)])
        x, y = x[keep], y[keep]
    return x.float() / 255.0, y


# ----------------------------------------------------------------- codes
def code_of(indices: torch.Tensor, tasks: torch.Tensor, classes: torch.Tensor, class_code: str):
    body = index_codes(indices.numpy().astype(np.int64), bits_per_part=M_BITS, primes=PRIMES)
    tp = torch.stack([task_prefix(int(t), bits=TASK_BITS, prime=TASK_PRIME) for t in range(5)])
    parts = [] if class_code.endswith("_notask") else [tp[tasks]]
    if class_code.startswith("onehot"):
        parts.append(F.one_hot(classes, 10).float() * 2 - 1)
    elif class_code == "prefix":
        cp = torch.stack([task_prefix(int(c), bits=10, prime=CLASS_PRIME) for c in range(10)])
        parts.append(cp[classes])
    return torch.cat(parts + [body], dim=1)


class Ledger:
    """Per task: K, N and per-class index ranges (a few integers). Nothing per sample."""

    def __init__(self):
        self.ranges = []  # (task, class or -1, start, end) inclusive, 1-based

    @property
    def total(self):
        return max((r[3] for r in self.ranges), default=0)

    def sample(self, n, gen):
        idx = torch.randint(1, self.total + 1, (n,), generator=gen)
        return idx

    def task_class(self, idx):
        t = torch.empty_like(idx)
        c = torch.empty_like(idx)
        for task, cls, a, b in self.ranges:
            m = (idx >= a) & (idx <= b)
            t[m] = task
            c[m] = cls
        return t, c


# ----------------------------------------------------------------- models
def build_decoder(arch, latent, width):
    if arch == "compact":
        return compact_autoencoder((1, 28, 28), latent, width)[1]
    kind, *a = arch.split(":")
    if kind == "mlp":  # code -> hidden -> (ch,7,7) -> deconvs
        hidden, ch = int(a[0]), int(a[1])
        fc = nn.Sequential(nn.Linear(latent, hidden), _act(), nn.Linear(hidden, ch * 49), _act())
        deconvs = nn.Sequential(*_deconv(ch, width, 4, 2, 1), *_deconv(width, 1, 4, 2, 1, last=True))
        return Decoder(fc, (ch, 7, 7), deconvs)
    if kind == "deep":  # code -> (ch,7,7) -> deconv -> conv -> deconv
        ch = int(a[0])
        fc = nn.Sequential(nn.Linear(latent, ch * 49), _act())
        deconvs = nn.Sequential(*_deconv(ch, width, 4, 2, 1),
                                nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), _act(),
                                *_deconv(width, 1, 4, 2, 1, last=True))
        return Decoder(fc, (ch, 7, 7), deconvs)
    raise ValueError(arch)


def make_classifier(norm):
    m = LeNet((1, 28, 28), 10)
    if norm == "bn":
        return m
    for i, layer in enumerate(m.features):
        if isinstance(layer, nn.BatchNorm2d):
            m.features[i] = nn.GroupNorm(8, layer.num_features) if norm == "gn" else nn.Identity()
    return m


def store_bytes_and_quantise(dec, store):
    """Quantise weights in place to what would be stored; return stored bytes."""
    total = 0
    with torch.no_grad():
        for name, p in dec.named_parameters():
            if store == "fp32" or p.dim() == 1:
                total += p.numel() * (4 if store == "fp32" or p.dim() == 1 else 2)
                if store != "fp32":  # biases / BN affine kept fp32
                    total += 0
                continue
            if store == "bf16":
                p.copy_(p.bfloat16().float())
                total += p.numel() * 2
            else:  # int8, symmetric per output channel (dim 0 for Linear/Conv, dim 1 for ConvT)
                dim = 1 if "deconvs" in name and p.dim() == 4 else 0
                red = [d for d in range(p.dim()) if d != dim]
                scale = p.abs().amax(dim=red, keepdim=True).clamp_min(1e-12) / 127
                p.copy_((p / scale).round().clamp(-127, 127) * scale)
                total += p.numel() + scale.numel() * 4
        for b in dec.buffers():
            if b.dtype.is_floating_point:
                total += b.numel() * 4
    return total


@torch.no_grad()
def decode(dec, codes, batch=1024):
    was = dec.training
    dec.eval()
    out = torch.cat([dec(codes[s:s + batch]) for s in range(0, len(codes), batch)]) if len(codes) else torch.empty(0, 1, 28, 28)
    dec.train(was)
    return out


def psnr(a, b):
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def train_local_ae(x, epochs, latent, gen):
    enc, dec = compact_autoencoder((1, 28, 28), latent, 64)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), 1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), 128):
            xb = x[order[s:s + 128]]
            loss = F.mse_loss(dec(enc(xb)), xb)
            opt.zero_grad(); loss.backward(); opt.step()
    enc.eval(); dec.eval()
    with torch.no_grad():
        rec = torch.cat([dec(enc(x[s:s + 1024])) for s in range(0, len(x), 1024)])
    return rec


def blur(x, sigma=1.0):
    k = torch.arange(-2, 3).float()
    k = torch.exp(-k ** 2 / (2 * sigma ** 2)); k = k / k.sum()
    x = F.conv2d(x, k.view(1, 1, 1, 5), padding=(0, 2))
    return F.conv2d(x, k.view(1, 1, 5, 1), padding=(2, 0))


def masked(logits, seen):
    m = torch.zeros(10, dtype=torch.bool); m[seen] = True
    return logits.masked_fill(~m, float("-inf"))


@torch.no_grad()
def accuracy(model, x, y, seen):
    model.eval()
    pred = torch.cat([masked(model(x[s:s + 1000]), seen).argmax(1) for s in range(0, len(x), 1000)])
    model.train()
    return 100.0 * float((pred == y).float().mean())


def train_oracle(x, y, epochs, gen):
    m = LeNet((1, 28, 28), 10)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), 128):
            r = order[s:s + 128]
            loss = F.cross_entropy(m(x[r]), y[r])
            opt.zero_grad(); loss.backward(); opt.step()
    m.eval()
    return m


# ----------------------------------------------------------------- main loop
def main():
    a = parse()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    t0 = time.time()
    xtr, ytr = load(a.dataset, "train", a.train_per_class, a.seed)
    xte, yte = load(a.dataset, "test", a.test_per_class, a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    oracle = train_oracle(xtr, ytr, a.oracle_epochs, gen) if a.oracle_epochs else None
    oracle_acc = accuracy(oracle, xte, yte, list(range(10))) if oracle else None
    print(f"oracle real-data CNN test acc {oracle_acc:.2f} ({time.time()-t0:.0f}s)", flush=True)

    extra = {"none": 0, "onehot": 10, "prefix": 10, "onehot_notask": 0}[a.class_code]
    latent = TASK_BITS + extra + M_BITS * len(PRIMES)
    dec = build_decoder(a.dec_arch, latent, a.width)
    enc = compact_autoencoder((1, 28, 28), latent, a.width)[0] if a.assign == "greedy" else None
    n_par = sum(p.numel() for p in dec.parameters())
    print(f"decoder params {n_par} fp32 MB {n_par*4/2**20:.2f}", flush=True)
    stored_dec = None  # decoder as stored after the previous task (quantised)
    ledger = Ledger()
    orig_x, orig_y = [], []  # MEASUREMENT ONLY: original image/label of each index
    specs = [s.split(":") for s in a.clf.split(",")]
    clfs = [dict(spec=s, model=make_classifier(s[3]), frozen=None, acc=[]) for s in specs]
    log = dict(args=vars(a), oracle_acc=oracle_acc, dec_params=n_par, tasks=[])
    next_index = 1
    for t, classes in enumerate(TASKS):
        tt = time.time()
        sel = (ytr[:, None] == torch.tensor(classes)[None]).any(1)
        xt, yt = xtr[sel], ytr[sel]
        g = torch.Generator().manual_seed(a.seed * 100 + t)
        perm = torch.randperm(len(yt), generator=g)
        xt, yt = xt[perm], yt[perm]
        # memorised subset, ordered by class when class codes are used
        if a.mem_per_class:
            mem = torch.cat([torch.nonzero(yt == c).squeeze(1)[:a.mem_per_class] for c in classes])
        else:
            mem = torch.arange(len(yt))
        if a.class_code != "none":
            mem = torch.cat([mem[yt[mem] == c] for c in classes])
        else:
            mem = mem[torch.randperm(len(mem), generator=g)]
        n_mem = len(mem)
        K = next_index
        idx = torch.arange(K, K + n_mem)
        # ledger ranges: per class if class-ordered, else one range per task (class -1)
        new_ranges = []
        if a.class_code != "none":
            s = K
            for c in classes:
                n_c = int((yt[mem] == c).sum())
                new_ranges.append((t, c, s, s + n_c - 1)); s += n_c
        else:
            new_ranges.append((t, -1, K, K + n_mem - 1))
        code_cls = yt[mem] if a.class_code != "none" else torch.zeros(n_mem, dtype=torch.long)
        codes = code_of(idx, torch.full((n_mem,), t), code_cls, a.class_code)  # code row r <-> index K+r
        xm = xt[mem]
        local_rec = None
        if a.local_ae:
            lt = time.time()
            local_rec = train_local_ae(xt, a.local_ae, a.local_latent, g)
            print(f"  local AE {time.time()-lt:.0f}s psnr {psnr(local_rec, xt):.2f}", flush=True)
        targets_all = local_rec[mem] if (a.dec_target == "local" and local_rec is not None) else xm
        frozen = copy.deepcopy(stored_dec).eval() if stored_dec is not None else None

        def past_pairs(n):
            if n == 0 or frozen is None:
                return None
            pi = ledger.sample(n, g)
            pt, pc = ledger.task_class(pi)
            pcodes = code_of(pi, pt, pc.clamp_min(0), a.class_code)
            return pcodes, decode(frozen, pcodes)

        # ---- encoder phases + greedy assignment (Alg. 1)
        agree = None
        if a.assign == "greedy":
            opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), 1e-3)
            cls_rows = {c: torch.nonzero(code_cls == c).squeeze(1) for c in code_cls.unique().tolist()}
            books = {c: CodeBook(codes[r]) for c, r in cls_rows.items()}
            n_past = 0 if frozen is None else round(128 * (K - 1) / n_mem)
            n_past = min(128, n_past)
            for ep in range(a.warmup + a.assign_epochs):
                assign = ep >= a.warmup
                for b in books.values():
                    b.reset()
                order = torch.randperm(n_mem, generator=g)
                for s in range(0, n_mem, 128):
                    r = order[s:s + 128]
                    x = targets_all[r]
                    z = enc(xm[r])
                    pp = past_pairs(n_past)
                    out = dec(z if pp is None else torch.cat([z, pp[0]]))
                    loss = F.mse_loss(out[:len(r)], x)
                    if pp is not None:
                        loss = loss + F.mse_loss(out[len(r):], pp[1]) * len(pp[1]) / len(r)
                    if assign:
                        tgt = torch.empty_like(z)
                        for c, rows_c in cls_rows.items():
                            mk = code_cls[r] == c
                            if mk.any():
                                ch = books[c].assign(z[mk])
                                tgt[mk] = codes[rows_c[ch]]
                        loss = loss + ((z - tgt) ** 2).sum(1).mean()
                    opt.zero_grad(); loss.backward(); opt.step()
            # freeze mapping: data row -> code row
            enc.eval()
            mapping = torch.empty(n_mem, dtype=torch.long)
            for b in books.values():
                b.reset()
            order = torch.randperm(n_mem, generator=g)
            ag, n_ag = 0.0, 0
            with torch.no_grad():
                for s in range(0, n_mem, 512):
                    r = order[s:s + 512]
                    z = enc(xm[r])
                    for c, rows_c in cls_rows.items():
                        mk = code_cls[r] == c
                        if mk.any():
                            ch = rows_c[books[c].assign(z[mk])]
                            mapping[r[mk]] = ch
                            ag += sign_agreement(z[mk], codes[ch]) * int(mk.sum()); n_ag += int(mk.sum())
            enc.train()
            agree = ag / n_ag
        else:
            mapping = torch.arange(n_mem)  # data row r gets code row r (random order / class order)
        inv = torch.empty(n_mem, dtype=torch.long); inv[mapping] = torch.arange(n_mem)
        code_targets = targets_all[inv]  # code row -> its target image
        code_real = xm[inv]
        t_enc = time.time() - tt

        # ---- decoder phase with self-rehearsal
        opt = torch.optim.Adam(dec.parameters(), a.dec_lr)
        per_epoch = a.dec_samples or 2 * n_mem
        steps = math.ceil(per_epoch / 128)
        share = 0.0 if frozen is None else 1 - a.dec_share
        dl = []
        for ep in range(a.dec_epochs):
            tot = 0.0
            for _ in range(steps):
                n_past = int(torch.binomial(torch.tensor(128.0), torch.tensor(share), generator=g)) if frozen is not None else 0
                r = torch.randint(n_mem, (128 - n_past,), generator=g)
                c_in, tg = codes[r], code_targets[r]
                pp = past_pairs(n_past)
                if pp is not None:
                    c_in, tg = torch.cat([c_in, pp[0]]), torch.cat([tg, pp[1]])
                loss = F.mse_loss(dec(c_in), tg)
                opt.zero_grad(); loss.backward(); opt.step()
                tot += float(loss.detach())
            dl.append(tot / steps)
        stored = store_bytes_and_quantise(dec, a.store)
        stored_dec = copy.deepcopy(dec).eval()
        t_dec = time.time() - tt - t_enc

        # ledger entry and measurement-only originals
        ledger.ranges += new_ranges
        orig_x.append(code_real); orig_y.append(yt[mem][inv])
        next_index = K + n_mem
        ox, oy = torch.cat(orig_x), torch.cat(orig_y)

        # ---- fidelity + class agreement per task (probes)
        fid = []
        for task in sorted({r[0] for r in ledger.ranges}):
            s_ = min(r[2] for r in ledger.ranges if r[0] == task)
            e_ = max(r[3] for r in ledger.ranges if r[0] == task)
            pi = torch.randint(s_, e_ + 1, (512,), generator=g)
            pt, pc = ledger.task_class(pi)
            rg = decode(stored_dec, code_of(pi, pt, pc.clamp_min(0), a.class_code))
            ps = psnr(rg, ox[pi - 1])
            with torch.no_grad():
                agr = 100 * float((oracle(rg).argmax(1) == oy[pi - 1]).float().mean())
            fid.append((round(ps, 2), round(agr, 1)))

        # ---- classifiers
        cur_code_rec = decode(stored_dec, codes)[mapping]  # data row order, memorised rows
        ae_rec = None
        if enc is not None and any(c["spec"][1] in ("ae", "aemix") for c in clfs):
            enc.eval(); stored_dec.eval()
            with torch.no_grad():
                ae_rec = torch.cat([stored_dec(enc(xt[s:s + 1024])) for s in range(0, len(xt), 1024)])
            enc.train()
            print(f"  ae path psnr {psnr(ae_rec, xt):.2f} vs code path {psnr(cur_code_rec, xm):.2f}", flush=True)
        cur_labels_mem = yt[mem]
        if t > 0:  # transient cache: every past index decoded once (decoder fixed in this phase)
            all_pi = torch.arange(1, K)
            apt, apc = ledger.task_class(all_pi)
            regen_all = decode(stored_dec, code_of(all_pi, apt, apc.clamp_min(0), a.class_code))
        seen = sum(TASKS[:t + 1], [])
        old_seen = sum(TASKS[:t], [])
        for c in clfs:
            old_in, new_in, tgt_kind, norm = c["spec"][:4]
            recalc = "recalc" if "recalc" in c["spec"] else "none"
            if new_in == "code":
                xin, yin = cur_code_rec, cur_labels_mem
            elif new_in == "real":
                xin, yin = xt, yt
            elif new_in == "local":
                xin, yin = local_rec, yt
            elif new_in == "blur":
                xin, yin = blur(xt), yt
            elif new_in == "ae":  # global encoder -> decoder (continuous z), every current sample
                xin, yin = ae_rec, yt
            elif new_in == "aemix":  # decoded codes for memorised + enc->dec for the others
                rest = torch.ones(len(yt), dtype=torch.bool); rest[mem] = False
                xin, yin = torch.cat([cur_code_rec, ae_rec[rest]]), torch.cat([cur_labels_mem, yt[rest]])
            else:
                raise ValueError(new_in)
            model, fr = c["model"], c["frozen"]
            opt = torch.optim.Adam(model.parameters(), 1e-3)
            n_past = 128 * t
            for ep in range(a.cls_epochs):
                order = torch.randperm(len(xin), generator=g)
                for s in range(0, len(xin), 128):
                    r = order[s:s + 128]
                    x, y = xin[r], yin[r]
                    if new_in == "blur":
                        pass
                    b = len(r)
                    if t > 0:
                        pi = torch.randint(1, K, (n_past,), generator=g)
                        if old_in == "real":
                            px = ox[pi - 1]
                        else:
                            px = regen_all[pi - 1]
                        if new_in == "blur":
                            px = blur(px) if old_in == "real" else px
                        if tgt_kind == "hard":
                            _, pc = ledger.task_class(pi)
                            ptg = F.one_hot(pc, 10).float()
                        elif tgt_kind == "true":
                            ptg = F.one_hot(oy[pi - 1], 10).float()
                        else:
                            with torch.no_grad():
                                ptg = F.softmax(masked(fr(px), old_seen), 1)
                        x = torch.cat([x, px])
                    if "aug" in c["spec"]:  # random +-2 px translation of every classifier input
                        xp = F.pad(x, (2, 2, 2, 2))
                        dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()
                        x = xp[:, :, dy:dy + 28, dx:dx + 28]
                    logits = masked(model(x), seen)
                    loss = F.cross_entropy(logits[:b], y)
                    if t > 0:
                        lp = F.log_softmax(logits[b:], 1).clamp_min(-1e4)
                        ploss = -(ptg * lp).sum(1).mean()
                        loss = (loss * b + ploss * n_past) / (b + n_past)
                    opt.zero_grad(); loss.backward(); opt.step()
            if recalc == "recalc" and norm == "bn":  # BN stats on real current + regenerated old
                for m_ in model.modules():
                    if isinstance(m_, nn.BatchNorm2d):
                        m_.reset_running_stats(); m_.momentum = None
                model.train()
                with torch.no_grad():
                    for s in range(0, len(xt), 256):
                        xb = xt[s:s + 256]
                        if t > 0:
                            pi = torch.randint(1, K, (256 * t,), generator=g)
                            pt, pc = ledger.task_class(pi)
                            xb = torch.cat([xb, decode(stored_dec, code_of(pi, pt, pc.clamp_min(0), a.class_code))])
                        model(xb)
                for m_ in model.modules():
                    if isinstance(m_, nn.BatchNorm2d):
                        m_.momentum = 0.1
            c["frozen"] = copy.deepcopy(model).eval()
            accs = []
            for j in range(t + 1):
                mk = (yte[:, None] == torch.tensor(TASKS[j])[None]).any(1)
                xe = blur(xte[mk]) if new_in == "blur" else xte[mk]
                accs.append(round(accuracy(model, xe, yte[mk], seen), 2))
            c["acc"].append(accs)
        rec = dict(task=t, n_mem=n_mem, sign_agree=agree, dec_loss_first_last=(dl[0], dl[-1]),
                   stored_bytes=stored, fid=fid, secs=round(time.time() - tt, 1),
                   t_enc=round(t_enc, 1), t_dec=round(t_dec, 1),
                   acc={":".join(c["spec"]): c["acc"][-1] for c in clfs})
        log["tasks"].append(rec)
        print(json.dumps(rec), flush=True)
    log["wall_s"] = round(time.time() - t0, 1)
    log["final"] = {":".join(c["spec"]): dict(avg=round(float(np.mean(c["acc"][-1])), 2), per_task=c["acc"][-1])
                    for c in clfs}
    log["stored_MB"] = round(stored / 2**20, 3)
    print("FINAL", json.dumps(log["final"]), "wall", log["wall_s"], "stored MB", log["stored_MB"], flush=True)
    with open(os.path.join(a.out, a.name + ".json"), "w") as fh:
        json.dump(log, fh, indent=1)


if __name__ == "__main__":
    main()
