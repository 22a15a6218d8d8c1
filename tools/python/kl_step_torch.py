"""One KL+MSE fine-tune step of a TopK SAE spliced into tiny-neox, in PyTorch on the CPU: the
baseline for splice's step time (the same work as spliceStep() in train/finetune.ts, described in
docs/ARCHITECTURE.md under "One KL+MSE step", in one framework).

Per step: the clean forward (no grad) gives the hook tensor x (residual stream after block 1) and
p_clean; the SAE reconstructs x̂; the suffix (blocks 2-3, final LayerNorm, unembedding) runs on x̂ —
the prefix is the same in both passes, so it is not run twice; kl = mean over tokens of
Σ_v p_clean·(log p_clean − log p_spliced); mse = mean over elements of (x̂ − x)²; alpha =
mse/(kl + 1e-8) detached; loss = 0.5·(mse + alpha·kl); backward to the SAE parameters (the LM is
frozen), clip the global grad norm at 1.0, AdamW step.

The weights come from fixtures/tiny-neox/tiny-neox.onnx (no PyTorch checkpoint is kept): named
initializers (through the Identity nodes torch.onnx uses for equal tensors) and, for each Linear,
the transposed weight its MatMul reads.

    /usr/bin/python3 tools/python/kl_step_torch.py [--steps 5]
Prints {"tokens_per_second", "steps", "batch", "seq", "threads", "seconds_per_step"}.
"""
import argparse
import json
import os
import sys
import time

import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_neox import TinyNeox  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HOOK_LAYER = 1


def linear_node(param):
    """blocks.0.qkv.weight -> /blocks.0/qkv/MatMul, unembed.weight -> /unembed/MatMul."""
    return "/" + "/".join(param.removesuffix(".weight").rsplit(".", 1)) + "/MatMul"


def load_tiny_neox(onnx_path, config_path):
    model = TinyNeox(json.load(open(config_path)))
    g = onnx.load(onnx_path).graph
    tensors = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] in tensors:
            tensors[n.output[0]] = tensors[n.input[0]]
    matmul = {n.name: n.input[1] for n in g.node if n.op_type == "MatMul"}
    state = {}
    for name in model.state_dict():
        if name in tensors:
            state[name] = tensors[name]
        elif name.endswith(".weight") and linear_node(name) in matmul:
            state[name] = tensors[matmul[linear_node(name)]].t().contiguous()  # stored transposed
        else:
            raise KeyError(f"{name}: not found in {onnx_path}")
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("steps", 5), ("batch", 8), ("seq", 128), ("d_sae", 2048), ("k", 16)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    a = ap.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    fx = os.path.join(ROOT, "fixtures", "tiny-neox")
    model = load_tiny_neox(os.path.join(fx, "tiny-neox.onnx"), os.path.join(fx, "tiny-neox.config.json"))
    d, V = model.c["d_model"], model.c["vocab"]

    W_dec = torch.nn.Parameter(F.normalize(torch.randn(a.d_sae, d), dim=1))
    W_enc = torch.nn.Parameter(W_dec.detach().t().clone())
    b_enc = torch.nn.Parameter(torch.zeros(a.d_sae))
    b_dec = torch.nn.Parameter(torch.zeros(d))
    params = [W_enc, b_enc, W_dec, b_dec]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    ids = torch.randint(0, V, (a.batch, a.seq))

    def suffix(h):
        for b in model.blocks[HOOK_LAYER + 1 :]:
            h = b(h)
        return model.unembed(model.ln_f(h))

    def step():
        with torch.no_grad():
            logits_clean, x = model(ids, hook_layer=HOOK_LAYER)
            lp_clean = F.log_softmax(logits_clean, -1)
        pre = (x - b_dec) @ W_enc + b_enc
        vals, idx = pre.topk(a.k, dim=-1, sorted=False)
        code = torch.zeros_like(pre).scatter_(-1, idx, torch.relu(vals))
        xhat = code @ W_dec + b_dec
        lp_sp = F.log_softmax(suffix(xhat), -1)
        kl = (lp_clean.exp() * (lp_clean - lp_sp)).sum(-1).mean()
        mse = (xhat - x).pow(2).mean()
        alpha = (mse / (kl + 1e-8)).detach()
        loss = 0.5 * (mse + alpha * kl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return kl.item(), mse.item()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(a.steps):
        kl, mse = step()
    dt = time.perf_counter() - t0
    print(json.dumps({
        "tokens_per_second": a.steps * a.batch * a.seq / dt, "steps": a.steps, "batch": a.batch, "seq": a.seq,
        "threads": torch.get_num_threads(), "seconds_per_step": dt / a.steps, "kl": kl, "mse": mse,
    }))


if __name__ == "__main__":
    main()
