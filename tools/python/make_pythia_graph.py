"""Writes a Pythia-160M-size GPT-NeoX graph with random weights to ONNX, for timing the KL fine-tune
step at the paper's scale on a GPU (timing needs the shapes, not trained weights).

  /usr/bin/python3 tools/python/make_pythia_graph.py OUT.onnx [--layers 12] [--d 768] [--vocab 50304] [--ctx 1024]

Needs Debian's python3-torch and python3-onnx (never a dependency of the service). Same block as the
tiny-neox fixture (tools/python/tiny_neox.py): parallel residual, rotary on 25% of head dims, exact
GELU, so the hook after block i is /blocks.i/Add_2_output_0 (the paper's hook: block 8).
"""
import argparse, json, os, sys
import torch

sys.path.insert(0, os.path.dirname(__file__))
from tiny_neox import TinyNeox  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--layers", type=int, default=12)
ap.add_argument("--d", type=int, default=768)
ap.add_argument("--heads", type=int, default=12)
ap.add_argument("--vocab", type=int, default=50304)
ap.add_argument("--ctx", type=int, default=1024)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

cfg = dict(vocab=a.vocab, d_model=a.d, n_layers=a.layers, n_heads=a.heads, d_mlp=4 * a.d,
           rotary_pct=0.25, ctx=a.ctx, eps=1e-5)
torch.manual_seed(a.seed)
model = TinyNeox(cfg).eval()
ids = torch.randint(0, a.vocab, (1, 16))
torch.onnx.export(model, (ids,), a.out, input_names=["input_ids"], output_names=["logits"],
                  dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}},
                  opset_version=17, do_constant_folding=True)
json.dump(cfg, open(a.out.removesuffix(".onnx") + ".config.json", "w"), indent=1)
n = sum(p.numel() for p in model.parameters())
print(f"wrote {a.out}: {n / 1e6:.1f}M parameters, {a.layers} layers, d={a.d}, vocab {a.vocab}")
