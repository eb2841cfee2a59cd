#!/usr/bin/env python3
"""Example app: image classification with a small ViT through Genie (vision pipeline).

The program is ordinary PyTorch + transformers code; the Genie-specific lines
are ``import genie``, ``model.to("remote_accelerator:0")`` and the
``with genie.phase("vision_encoding"):`` block, which sends the requests to
the executors of the ``vision`` phase group.  The model is built from a
transformers ViTConfig with random weights from a fixed seed and the
"images" are seeded random tensors (nothing is downloaded).  Run it as is
(embedded mode) or under a launcher
(``genie-launch --phases vision:2 -- python classify_images.py``, or
``srun --genie-phases=vision:2 python classify_images.py``).

  --check   also run plain PyTorch eager on the original model (with its
            Conv2d patch embedding) on the same weights and images; exit 1
            unless every logit agrees within a relative error of 1e-4
            (max |genie - torch| / max |torch|) and every predicted label is
            identical
  --stats   print genie.get_stats() as JSON at the end; in the distributed
            mode also one line per executor (phase group, requests, compute
            time).  With --check, exit 1 unless the vision executors ran the
            requests, and (given at least as many batches as vision
            executors) every vision executor ran some.
"""

import argparse
import copy
import json
import sys
import time

import torch
from torch import nn

import genie  # first import: adds the remote_accelerator device

MODELS = {
    # initializer_range 0.2: random weights that spread the logits, so the
    # predicted labels vary from image to image and --check compares
    # something meaningful.
    "vit-tiny": dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64,
                     num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     num_labels=10, initializer_range=0.2),
}
REL_TOL = 1e-4
VISION_GROUPS = ("vision", "vision_encoding")


class PatchLinear(nn.Linear):
    """A Conv2d with kernel_size == stride == p (and no padding, dilation or
    groups), computed as a Linear on the image's non-overlapping p x p patches.

    Why: the Genie runtime has no convolution op (runtime/include/genie/ops.def),
    and ViT's patch embedding is exactly such a conv: every output pixel is the
    dot product of the conv weight with one patch that no other output pixel
    sees.  Cutting the image into patches with reshape/permute and applying a
    Linear that holds the conv's weights gives the same result with ops every
    backend has.  The output keeps the conv's layout (B, D, H/p, W/p), so
    ViTPatchEmbeddings' own ``.flatten(2).transpose(1, 2)`` works unchanged.
    It is an nn.Linear (weight (D, C*p*p), bias (D)) because ViTModel reads
    ``projection.weight.dtype``.

    Shapes: B = batch, C = channels, H, W = image size, p = patch size,
    D = hidden size; h = H/p, w = W/p.
    """

    def __init__(self, conv):
        kh, kw = conv.kernel_size
        if (kh, kw) != tuple(conv.stride) or tuple(conv.padding) != (0, 0) or \
                tuple(conv.dilation) != (1, 1) or conv.groups != 1:
            raise ValueError("PatchLinear: only a conv with kernel_size == stride and no "
                             "padding, dilation or groups is a patch-wise linear")
        super().__init__(conv.in_channels * kh * kw, conv.out_channels,
                         bias=conv.bias is not None, dtype=conv.weight.dtype)
        self.patch = (kh, kw)
        with torch.no_grad():
            # conv weight (D, C, p, p) -> (D, C*p*p), in the (c, i, j) order
            # the patches are flattened in by forward().
            self.weight.copy_(conv.weight.reshape(conv.out_channels, -1))
            if conv.bias is not None:
                self.bias.copy_(conv.bias)

    def forward(self, x):                                    # x: (B, C, H, W)
        B, C, H, W = x.shape
        ph, pw = self.patch
        h, w = H // ph, W // pw
        if H % ph or W % pw:                                 # the conv ignores the rest
            x = x[:, :, :h * ph, :w * pw]
        x = x.reshape(B, C, h, ph, w, pw)                    # (B, C, h, p, w, p)
        x = x.permute(0, 2, 4, 1, 3, 5)                      # (B, h, w, C, p, p)
        x = x.reshape(B, h, w, C * ph * pw)                  # (B, h, w, C*p*p)
        y = super().forward(x)                               # (B, h, w, D)
        return y.permute(0, 3, 1, 2)                         # (B, D, h, w)


def build_model(name, seed, attn):
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    cfg = ViTConfig(**MODELS[name], attn_implementation=attn)
    return ViTForImageClassification(cfg).eval()


def conv_free(model):
    """The same model with its patch-embedding Conv2d replaced by PatchLinear."""
    emb = model.vit.embeddings.patch_embeddings
    emb.projection = PatchLinear(emb.projection)
    return model


def make_images(n_batches, batch_size, cfg, seed):
    g = torch.Generator().manual_seed(seed + 1)
    shape = (batch_size, cfg.num_channels, cfg.image_size, cfg.image_size)
    return [torch.randn(shape, generator=g) for _ in range(n_batches)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="vit-tiny")
    ap.add_argument("--batches", type=int, default=3, help="number of batches (>= 1)")
    ap.add_argument("--batch-size", type=int, default=4, help="images per batch (>= 1)")
    ap.add_argument("--attn", choices=("eager", "sdpa"), default="sdpa",
                    help="transformers attention implementation (both run remotely)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="compare with plain PyTorch")
    ap.add_argument("--stats", action="store_true", help="print genie.get_stats() as JSON")
    args = ap.parse_args(argv)
    if args.batches < 1 or args.batch_size < 1:
        ap.error("--batches and --batch-size must be >= 1")

    model = build_model(args.model, args.seed, args.attn)
    # The reference keeps the original Conv2d: --check also tests PatchLinear.
    reference = copy.deepcopy(model) if args.check else None
    model = conv_free(model)
    batches = make_images(args.batches, args.batch_size, model.config, args.seed)
    n_images = args.batches * args.batch_size

    info = genie.init()
    print(f"genie: mode={info['mode']} backend={info['backend']} model={args.model} "
          f"batches={args.batches} batch_size={args.batch_size} attn={args.attn}", flush=True)
    model.to("remote_accelerator:0")

    logits, t_genie = [], 0.0
    for i, images in enumerate(batches):
        t0 = time.perf_counter()
        with torch.no_grad(), genie.phase("vision_encoding"):
            out = model(pixel_values=images.to("remote_accelerator:0")).logits
        out = out.cpu()                    # materialise: runs the captured graph
        dt = time.perf_counter() - t0
        t_genie += dt
        logits.append(out)
        print(f"batch {i}: labels {out.argmax(-1).tolist()} ({dt * 1e3:.1f} ms)", flush=True)
    print(f"genie: {n_images} images in {t_genie:.3f} s")

    failures = []
    if reference is not None:
        t0 = time.perf_counter()
        with torch.no_grad():
            ref = [reference(pixel_values=images).logits for images in batches]
        t_torch = time.perf_counter() - t0
        ours, theirs = torch.cat(logits).double(), torch.cat(ref).double()
        rel = float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30))
        same = ours.argmax(-1) == theirs.argmax(-1)
        print(f"pytorch eager: {n_images} images in {t_torch:.3f} s; "
              f"max rel err {rel:.3e} (bound {REL_TOL:.0e})")
        if not rel <= REL_TOL:              # also catches NaN
            failures.append(f"logits differ from PyTorch: max rel err {rel:.3e} > {REL_TOL:.0e}")
        bad = [int(j) for j in (~same).nonzero().flatten()]
        if bad:
            failures.append(f"{len(bad)} of {n_images} predicted labels differ from PyTorch "
                            f"(images {bad[:10]})")

    if args.stats:
        stats = genie.get_stats()
        print(json.dumps(stats, indent=2))
        if stats["mode"] == "distributed":
            failures += distributed_summary(stats, args.batches)

    if reference is not None:
        for f in failures:
            print(f"genie: {f}", file=sys.stderr)
        if failures:
            return 1
        print(f"all {n_images} images match (max rel err {rel:.3e})")
    return 0


def distributed_summary(stats, n_batches):
    """Print one line per executor and return the problems found (empty when
    the vision executors ran every vision_encoding request, spread over all
    of them when there were enough batches)."""
    problems = []
    vision_requests = 0
    n_vision = sum(e["phase"] in VISION_GROUPS for e in stats["executors"])
    for e in stats["executors"]:
        n = e["driver_requests"].get("vision_encoding", 0)
        compute = e.get("phase_compute_s", {}).get("vision_encoding", 0.0)
        cvd = e.get("cuda_visible_devices")
        print(f"executor rank {e['rank']} ({e['phase']} slice {e['slice']}): "
              f"{n} vision_encoding requests, {compute:.4f} s compute, "
              f"{e.get('requests', 0)} requests in all, "
              f"cuda_visible_devices={'(unset)' if cvd is None else cvd} "
              f"({e['host']} pid {e['pid']})")
        if e["phase"] in VISION_GROUPS:
            vision_requests += n
            # Each batch is one request, placed on the least-loaded vision
            # executor, so enough batches reach every one of them.
            if n_batches >= n_vision and not (n > 0 and compute > 0):
                problems.append(f"vision executor rank {e['rank']} did no vision work")
        elif n:
            problems.append(f"executor rank {e['rank']} (group {e['phase']}) ran {n} "
                            f"vision_encoding requests outside the vision group")
    if not vision_requests:
        problems.append("no request ran on a vision executor")
    return problems


if __name__ == "__main__":
    sys.exit(main())
