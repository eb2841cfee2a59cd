#!/usr/bin/env python3
"""Example app: image classification with a small ViT or ResNet through Genie (vision pipeline).

The program is ordinary PyTorch + transformers code; the Genie-specific lines
are ``import genie``, ``model.to("remote_accelerator:0")`` and the
``with genie.phase("vision_encoding"):`` block, which sends the requests to
the executors of the ``vision`` phase group.  The model is built from a
transformers config (ViTConfig, ResNetConfig) with random weights from a
fixed seed, and runs unchanged, convolutions included; the
"images" are seeded random tensors (nothing is downloaded).  Run it as is
(embedded mode) or under a launcher
(``genie-launch --phases vision:2 -- python classify_images.py``, or
``srun --genie-phases=vision:2 python classify_images.py``).

  --check   also run plain PyTorch eager on the same model, weights and
            images; exit 1 unless every logit agrees within a relative error
            of 1e-4 (max |genie - torch| / max |torch|) and every predicted
            label is identical
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
import genie  # first import: adds the remote_accelerator device

MODELS = {
    # name: (model class, config class, config).  initializer_range 0.2 for
    # the ViT: random weights that spread the logits, so the predicted labels
    # vary from image to image and --check compares something meaningful.
    "vit-tiny": ("ViTForImageClassification", "ViTConfig",
                 dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64,
                      num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                      num_labels=10, initializer_range=0.2)),
    # A ResNet: stem conv 7x7 stride 2, batch norm, max pooling, bottleneck
    # stages with strided 1x1/3x3 convs, adaptive average pooling.
    "resnet-tiny": ("ResNetForImageClassification", "ResNetConfig",
                    dict(num_channels=3, embedding_size=16, hidden_sizes=[16, 32, 64],
                         depths=[1, 1, 1], layer_type="bottleneck", num_labels=10)),
}
REL_TOL = 1e-4
VISION_GROUPS = ("vision", "vision_encoding")


def build_model(name, seed, attn):
    """The unchanged transformers model for `name`, random weights from `seed`."""
    import transformers

    torch.manual_seed(seed)
    cls_name, cfg_name, kw = MODELS[name]
    if cls_name.startswith("ViT"):            # the ResNet has no attention
        kw = dict(kw, attn_implementation=attn)
    cfg = getattr(transformers, cfg_name)(**kw)
    return getattr(transformers, cls_name)(cfg).eval()


IMAGE_SIZE = 32      # the ViT's configured size; the ResNet takes any size


def make_images(n_batches, batch_size, cfg, seed):
    g = torch.Generator().manual_seed(seed + 1)
    size = getattr(cfg, "image_size", IMAGE_SIZE)
    shape = (batch_size, cfg.num_channels, size, size)
    return [torch.randn(shape, generator=g) for _ in range(n_batches)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="vit-tiny")
    ap.add_argument("--batches", type=int, default=3, help="number of batches (>= 1)")
    ap.add_argument("--batch-size", type=int, default=4, help="images per batch (>= 1)")
    ap.add_argument("--attn", choices=("eager", "sdpa"), default="sdpa",
                    help="transformers attention implementation of the ViT (both run "
                         "remotely)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="compare with plain PyTorch")
    ap.add_argument("--stats", action="store_true", help="print genie.get_stats() as JSON")
    args = ap.parse_args(argv)
    if args.batches < 1 or args.batch_size < 1:
        ap.error("--batches and --batch-size must be >= 1")

    model = build_model(args.model, args.seed, args.attn)
    reference = copy.deepcopy(model) if args.check else None
    batches = make_images(args.batches, args.batch_size, model.config, args.seed)
    n_images = args.batches * args.batch_size

    info = genie.init()
    print(f"genie: mode={info['mode']} backend={info['backend']} model={args.model} "
          f"batches={args.batches} batch_size={args.batch_size} attn={args.attn}", flush=True)
    model.to("remote_accelerator:0")

    logits, t_genie = [], 0.0
    for i, images in enumerate(batches):
        t0 = time.perf_counter()
        try:
            with torch.no_grad(), genie.phase("vision_encoding"):
                out = model(pixel_values=images.to("remote_accelerator:0")).logits
            out = out.cpu()                # materialise: runs the captured graph
        except genie.GenieError as e:      # one line, no stack: the message says it all
            print(e, file=sys.stderr)
            return 1
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
