"""GPU throughput of sweeplab's networks (benchmarks/gpu.sh runs it; --device cpu and tiny sizes dry-run it).

    python benchmarks/gpu_bench.py lm [--width 1024 --layers 12 --heads 16 --seq 1024] [--batch 0]
    python benchmarks/gpu_bench.py images [--sizes 64,150] [--batch 256]

``lm``: training tokens/s and model-FLOPs utilisation of the Transformer LM (conf/model/transformer.yaml, full
softmax over a 40k vocabulary) under bf16 autocast with fused AdamW, eager and ``torch.compile``d, at the
largest batch that fits (``--batch 0``: doubled from 1 until it runs out of memory or fills 80 % of it).
Model FLOPs per token: 6 N + 12 L T d (N: parameters but the position embedding, nanoGPT's estimate).
``images``: training images/s of the lensing networks (conf/model/{densenet_cbam,resnet}.yaml). One JSON
line each.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from common import compose

# Dense bf16 peak of the card, for MFU (vendor figures, no sparsity).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}


def peak_flops(device: torch.device, given: float | None) -> float | None:
    if given:
        return given * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def build(overrides: list[str], **facts):
    from hydra.utils import instantiate

    cfg = compose(overrides, tempfile.mkdtemp(prefix="sweeplab_gpu_"))
    return instantiate(cfg.model, **facts)


def timed_steps(step, steps: int, device: torch.device) -> float:
    """Seconds per step, after three warm-up steps (compilation, autotuning, allocator)."""
    for _ in range(3):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t0) / steps


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(net, opt, make_batch, loss_fn, device: torch.device):
    x, y = make_batch()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_fn(net, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def fits(run, device: torch.device) -> bool:
    """Whether ``run()`` completes without running out of memory, using at most 80 % of it."""
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        run()
        sync(device)
    except torch.OutOfMemoryError:
        return False
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if device.type != "cuda":
        return True
    return torch.cuda.max_memory_allocated(device) < 0.8 * torch.cuda.get_device_properties(device).total_memory


def lm(args, device: torch.device) -> dict:
    V = args.vocab
    overrides = [
        "model=transformer",
        f"model.embed_dim={args.width}",
        f"model.hidden_dim={4 * args.width}",
        f"model.num_layers={args.layers}",
        f"model.num_heads={args.heads}",
        "model.dropout=0.0",
        "model.adaptive_cutoffs=null",
    ]
    loss_fn = lambda net, x, y: net.nll(x, y)[0] / y.numel()  # noqa: E731
    rows = []
    batch = args.batch
    for compiled in (False, True):
        torch.manual_seed(0)
        net = build(overrides, vocab_size=V, max_len=args.seq).to(device)
        n = sum(p.numel() for p in net.parameters()) - net.pos.weight.numel()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=device.type in ("cuda", "cpu"))
        if compiled:  # as compile.enabled=true does (runs/fit.py): compiled on the first call
            net.compile(backend=args.compile_backend)
            net.nll = torch.compile(net.nll, backend=args.compile_backend)

        def make(b):
            return lambda: (torch.randint(0, V, (b, args.seq), device=device),) * 2

        if not batch:  # the largest power of two that fits, found once (eager) and used for both
            b = 1
            while b < 4096 and fits(train_step(net, opt, make(b * 2), loss_fn, device), device):
                b *= 2
            batch = b
        step = train_step(net, opt, make(batch), loss_fn, device)
        t0 = time.perf_counter()
        step()
        first = time.perf_counter() - t0
        seconds = timed_steps(step, args.steps, device)
        tokens = batch * args.seq / seconds
        flops_per_token = 6 * n + 12 * args.layers * args.seq * args.width
        peak = peak_flops(device, args.peak_tflops)
        rows.append(
            {
                "compile": compiled,
                "batch": batch,
                "tokens_per_s": round(tokens),
                "step_ms": round(seconds * 1e3, 2),
                "model_tflops": round(tokens * flops_per_token / 1e12, 2),
                "mfu": round(tokens * flops_per_token / peak, 4) if peak else None,
                "first_step_s": round(first, 1),  # the compile time, for compiled
                "max_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 1)
                if device.type == "cuda"
                else None,
            }
        )
        del net, opt, step
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "bench": "gpu_lm",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": {"width": args.width, "layers": args.layers, "heads": args.heads, "seq": args.seq, "vocab": V,
                  "params_no_pos": n},
        "peak_tflops": (peak_flops(device, args.peak_tflops) or 0) / 1e12 or None,
        "rows": rows,
    }  # fmt: skip


def images(args, device: torch.device) -> dict:
    import torch.nn.functional as F

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for model in ("densenet_cbam", "resnet"):
            torch.manual_seed(0)
            net = build([f"model={model}", "data=lensing"], in_channels=1, num_classes=3, image_size=size).to(device)
            net = net.to(memory_format=torch.channels_last)
            opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=device.type in ("cuda", "cpu"))

            def make(b=args.batch, s=size):
                x = torch.randn(b, 1, s, s, device=device).to(memory_format=torch.channels_last)
                return x, torch.randint(0, 3, (b,), device=device)

            step = train_step(net, opt, make, lambda n, x, y: F.cross_entropy(n(x), y), device)
            seconds = timed_steps(step, args.steps, device)
            rows.append({"model": model, "image_size": size, "batch": args.batch,
                         "images_per_s": round(args.batch / seconds), "step_ms": round(seconds * 1e3, 2)})  # fmt: skip
    return {"bench": "gpu_images", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "precision": "bf16-mixed", "rows": rows}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("lm", "images"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=40000)
    ap.add_argument("--batch", type=int, default=0, help="0: the largest power of two that fits (lm)")
    ap.add_argument("--sizes", default="64,150")
    ap.add_argument("--compile-backend", default="inductor")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak, for MFU")
    args = ap.parse_args()
    if args.what == "images" and not args.batch:
        args.batch = 256
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    print(json.dumps((lm if args.what == "lm" else images)(args, device)), flush=True)


if __name__ == "__main__":
    main()
