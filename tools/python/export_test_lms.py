"""Two small random-weight LMs in the styles of GPT-2 and Llama, exported by torch.onnx (opset 17),
with PyTorch autograd references for splice-grad (same definitions as make_reference.py):

  gpt2-mini: learned positions, LayerNorm, fused qkv Linear + split, sliced causal-mask buffer,
             tanh GELU via pow(x, 3), tied unembedding, final LayerNorm.
  llama-mini: RMSNorm (pow/mean/rsqrt), rotary sin/cos computed from positions in the graph,
             grouped-query attention widened with expand, triu causal mask, SwiGLU (silu), untied head.

Usage: /usr/bin/python3 tools/python/export_test_lms.py test/fixtures/lm-export
Writes <name>.onnx and <name>.reference.safetensors (input_ids, recon, logits_clean, logits_spliced,
kl_per_token, ce_{clean,spliced,zero}_per_token, grad_kl_recon, grad_ce_recon; metadata hook_tensor).
"""
import math, sys
import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import st
from splice_at import run_blocks

V, D, CTX = 64, 32, 32

class Gpt2Block(nn.Module):
    def __init__(self, h=2):
        super().__init__()
        self.h, self.hd = h, D // h
        self.ln_1, self.ln_2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.c_attn, self.c_proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.fc, self.proj = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
        self.register_buffer("bias", torch.tril(torch.ones(CTX, CTX, dtype=torch.bool))[None, None], persistent=False)
    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        sh = lambda t: t.view(B, T, self.h, self.hd).transpose(1, 2)
        q, k, v = sh(q), sh(k), sh(v)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        s = torch.where(self.bias[:, :, :T, :T], s, torch.tensor(torch.finfo(s.dtype).min))
        o = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.c_proj(o)
        hdn = self.fc(self.ln_2(x))
        g = 0.5 * hdn * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (hdn + 0.044715 * torch.pow(hdn, 3.0))))
        return x + self.proj(g)

class Gpt2Mini(nn.Module):
    def __init__(self, n=2):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(CTX, D)
        self.blocks = nn.ModuleList([Gpt2Block() for _ in range(n)])
        self.ln_f = nn.LayerNorm(D)
    def forward(self, ids, hook_layer=None, replace=None):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(T, dtype=torch.long)[None])
        x, hooked = run_blocks(self.blocks, x, hook_layer, replace)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return logits if hook_layer is None else (logits, hooked)

class RMSNorm(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(D))
    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)

class LlamaBlock(nn.Module):
    def __init__(self, h=4, kvh=2):
        super().__init__()
        self.h, self.kvh, self.hd = h, kvh, D // h
        self.attn_norm, self.mlp_norm = RMSNorm(), RMSNorm()
        self.q = nn.Linear(D, D, bias=False)
        self.k = nn.Linear(D, kvh * self.hd, bias=False)
        self.v = nn.Linear(D, kvh * self.hd, bias=False)
        self.o = nn.Linear(D, D, bias=False)
        self.gate, self.up = nn.Linear(D, 2 * D, bias=False), nn.Linear(D, 2 * D, bias=False)
        self.down = nn.Linear(2 * D, D, bias=False)
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, self.hd, 2).float() / self.hd)), persistent=False)
    def forward(self, x):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.kvh, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.kvh, self.hd).transpose(1, 2)
        pos = torch.arange(T, dtype=torch.float32)
        fr = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat((fr, fr), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = self.h // self.kvh
        widen = lambda t: t[:, :, None].expand(B, self.kvh, rep, T, self.hd).reshape(B, self.h, T, self.hd)
        k, v = widen(k), widen(v)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        future = torch.triu(torch.ones(T, T), diagonal=1).bool()
        s = s.masked_fill(future, float("-inf"))
        o = (F.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.o(o)
        h2 = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h2)) * self.up(h2))

class LlamaMini(nn.Module):
    def __init__(self, n=2):
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.blocks = nn.ModuleList([LlamaBlock() for _ in range(n)])
        self.norm, self.head = RMSNorm(), nn.Linear(D, V, bias=False)
    def forward(self, ids, hook_layer=None, replace=None):
        x = self.embed(ids)
        x, hooked = run_blocks(self.blocks, x, hook_layer, replace)
        logits = self.head(self.norm(x))
        return logits if hook_layer is None else (logits, hooked)

def hook_tensor(path):
    """The one tensor made in block 0 and read by block 1: the residual stream after block 0."""
    g = onnx.load(path).graph
    made = {o for n in g.node if n.name.startswith("/blocks.0/") and n.op_type != "Constant" for o in n.output}
    read = {i for n in g.node if n.name.startswith("/blocks.1/") for i in n.input if i in made}
    assert len(read) == 1, read
    return read.pop()

def make(name, model, out_dir, B=2, T=16):
    torch.manual_seed(1)
    for pname, p in model.named_parameters():
        if p.dim() > 1:
            nn.init.normal_(p, std=0.3)
        else:
            nn.init.normal_(p, mean=1.0 if pname.endswith("weight") else 0.0, std=0.1)
    model.eval()
    path = f"{out_dir}/{name}.onnx"
    torch.onnx.export(model, (torch.randint(0, V, (2, 8)),), path, input_names=["input_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
                      opset_version=17, do_constant_folding=True)
    hook = hook_tensor(path)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, V, (B, T), generator=g)
    with torch.no_grad():
        logits_clean, resid = model(ids, hook_layer=0)
    recon = (resid + 0.1 * resid.std() * torch.randn(resid.shape, generator=g)).detach().requires_grad_(True)
    logits_sp, _ = model(ids, hook_layer=0, replace=recon)
    lp_c, lp_s = F.log_softmax(logits_clean, -1), F.log_softmax(logits_sp, -1)
    kl = (lp_c.exp() * (lp_c - lp_s)).sum(-1)
    ce = lambda lg: F.cross_entropy(lg[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), reduction="none").view(B, T - 1)
    ce_sp = ce(logits_sp)
    (gk,) = torch.autograd.grad(kl.mean(), recon, retain_graph=True)
    (gc,) = torch.autograd.grad(ce_sp.mean(), recon)
    with torch.no_grad():
        logits_zero, _ = model(ids, hook_layer=0, replace=torch.zeros_like(resid))
    t = lambda x: x.detach().numpy().astype(np.float32) if x.dtype.is_floating_point else x.numpy()
    st.save(f"{out_dir}/{name}.reference.safetensors", dict(
        input_ids=t(ids), recon=t(recon), logits_clean=t(logits_clean), logits_spliced=t(logits_sp),
        kl_per_token=t(kl), ce_clean_per_token=t(ce(logits_clean)), ce_spliced_per_token=t(ce_sp),
        ce_zero_per_token=t(ce(logits_zero)), grad_kl_recon=t(gk), grad_ce_recon=t(gc)),
        metadata=dict(hook_tensor=hook, torch=torch.__version__))
    ops = sorted({n.op_type for n in onnx.load(path).graph.node})
    print(name, "hook", hook, "KL", kl.mean().item(), "CE", ce_sp.mean().item(), "ops", ops)

if __name__ == "__main__":
    out = sys.argv[1]
    torch.manual_seed(0)
    make("gpt2-mini", Gpt2Mini(), out)
    make("llama-mini", LlamaMini(), out)
