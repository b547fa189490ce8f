"""The seed's names loop, by hand (makemore part 2): context 3, embedding 10, one tanh layer of 200,
unit-normal initial weights as in the lecture, plain SGD on 32 random windows per step, lr 0.1 then 0.01
after half of the 20k steps; test loss on sweeplab's 80/10/10 split of names.txt (the same permutation as
data/names.py), in nats/char.

    python benchmarks/seed_loop.py [--steps 20000]     # one JSON line; benchmarks/names_vs_seed.py times it

Plain PyTorch only, as a user would write it: no sweeplab, no Lightning.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

NAMES = Path(__file__).resolve().parents[1] / "src" / "sweeplab" / "data" / "assets" / "names.txt"


def windows(words: list[str], stoi: dict[str, int], block: int = 3):
    xs, ys = [], []
    for w in words:
        context = [0] * block
        for ch in [*w, "."]:
            xs.append(context)
            ys.append(stoi[ch])
            context = [*context[1:], stoi[ch]]
    return torch.tensor(xs), torch.tensor(ys)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=2147483647)
    args = ap.parse_args()
    t0 = time.perf_counter()
    words = [w.strip() for w in NAMES.read_text().splitlines() if w.strip()]
    order = torch.randperm(len(words), generator=torch.Generator().manual_seed(42)).tolist()
    n1, n2 = round(0.8 * len(words)), round(0.9 * len(words))
    train = [words[i] for i in order[:n1]]
    test = [words[i] for i in order[n2:]]
    stoi = {ch: i + 1 for i, ch in enumerate(sorted(set("".join(words))))}
    stoi["."] = 0
    Xtr, Ytr = windows(train, stoi)
    Xte, Yte = windows(test, stoi)

    g = torch.Generator().manual_seed(args.seed)
    C = torch.randn((len(stoi), 10), generator=g)
    W1 = torch.randn((30, 200), generator=g)
    b1 = torch.randn(200, generator=g)
    W2 = torch.randn((200, len(stoi)), generator=g)
    b2 = torch.randn(len(stoi), generator=g)
    params = [C, W1, b1, W2, b2]
    for p in params:
        p.requires_grad = True
    for i in range(args.steps):
        ix = torch.randint(0, Xtr.shape[0], (32,), generator=g)
        h = torch.tanh(C[Xtr[ix]].view(-1, 30) @ W1 + b1)
        loss = F.cross_entropy(h @ W2 + b2, Ytr[ix])
        for p in params:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < args.steps // 2 else 0.01
        for p in params:
            p.data += -lr * p.grad
    with torch.no_grad():
        h = torch.tanh(C[Xte].view(-1, 30) @ W1 + b1)
        test_loss = F.cross_entropy(h @ W2 + b2, Yte).item()
    print(
        json.dumps(
            {
                "bench": "seed_loop",
                "steps": args.steps,
                "test_loss": round(test_loss, 4),
                "loop_s": round(time.perf_counter() - t0, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
