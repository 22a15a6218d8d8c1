"""The TopK SAE train step in PyTorch on the CPU, as bench/sae.ts times it on the GPU adapter.

Dense decoder as dictionary_learning's AutoEncoderTopK does it (scatter the top-k into a dense
[N, n] code, then code @ W_dec), MSE loss, backward, global-norm clip 1.0, AdamW.
Prints one JSON line: {"d", "n", "k", "tokens", "steps", "seconds_per_step", "threads"}.
    python3 tools/python/sae_step_torch.py --d 768 --n 16384 --k 64 --tokens 4096 --steps 3
"""
import argparse
import json
import os
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("d", 128), ("n", 2048), ("k", 16), ("tokens", 4096), ("steps", 5)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    a = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    W_dec = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(a.n, a.d), dim=1))
    W_enc = torch.nn.Parameter(W_dec.detach().t().clone())
    b_enc = torch.nn.Parameter(torch.zeros(a.n))
    b_dec = torch.nn.Parameter(torch.zeros(a.d))
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    x = torch.randn(a.tokens, a.d)

    def step():
        pre = (x - b_dec) @ W_enc + b_enc
        vals, idx = pre.topk(a.k, dim=-1, sorted=False)
        code = torch.zeros_like(pre).scatter_(-1, idx, torch.relu(vals))
        xhat = code @ W_dec + b_dec
        loss = (xhat - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t0) / a.steps
    print(json.dumps({
        "d": a.d, "n": a.n, "k": a.k, "tokens": a.tokens, "steps": a.steps,
        "seconds_per_step": dt, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
