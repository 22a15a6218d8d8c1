"""Hugging-Face-shaped ONNX LM fixtures with PyTorch autograd references (issue #14).

Small random-weight GPT-2, GPT-NeoX (Pythia) and Llama (GQA) models from hf_models.py, exported the
way Optimum does (`text-generation` and `text-generation-with-past`: input/output names and dynamic
axes), plus the variants users meet on the Hub: FLOAT16 initializers with Casts, a fully float16
model (transformers.js `model_fp16.onnx`), external data (`model.onnx` + `model.onnx_data`) and a
merged decoder with an `If` on `use_cache_branch` (Optimum's `decoder_model_merged.onnx`).

Usage: /usr/bin/python3 tools/python/export_hf_lms.py test/fixtures/hf
Definitions of the references: test/fixtures/hf/README.md (same as fixtures/tiny-neox/README.md).
"""
import hashlib
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_models  # noqa: E402
import st  # noqa: E402
from hf_models import ARCHS, HEAD_DIM, KV_HEADS, N_LAYERS, V  # noqa: E402

OPSET = {"gpt2": 14, "neox": 17, "llama": 14}
B, T = 2, 16  # the reference batch
FP16_MAX = 65504.0

try:
    import onnxruntime as ort
except ImportError:
    ort = None


# ---------------------------------------------------------------- models and weights

def make_model(arch):
    torch.manual_seed({"gpt2": 11, "neox": 12, "llama": 13}[arch])
    model = ARCHS[arch]()
    for name, p in model.named_parameters():
        # Scaled so that activations stay O(1) and the next-token distribution is far from uniform
        # (HF's std 0.02 would make KL and the gradients vanishingly small).
        if name.endswith(("wte.weight", "embed_in.weight", "embed_tokens.weight")):
            nn.init.normal_(p, std=0.25)
        elif name.endswith("wpe.weight"):
            nn.init.normal_(p, std=0.1)
        elif p.dim() == 2:
            fan_in = p.shape[0] if "c_attn" in name or "c_fc" in name or "c_proj" in name else p.shape[1]
            nn.init.normal_(p, std=1.0 / fan_in ** 0.5)
        elif name.endswith("weight"):
            nn.init.normal_(p, mean=1.0, std=0.1)
        else:
            nn.init.normal_(p, std=0.05)
    return model.eval()


def round_fp16_(model):
    """Round every parameter to the nearest float16 (what a FLOAT16 initializer keeps). Float
    buffers (Llama's inv_freq) are not rounded: torch.onnx folds them into Constant nodes, which
    the FLOAT16-initializer variant keeps in float32 (and GPT-2, the fully fp16 one, has none)."""
    with torch.no_grad():
        for t in model.parameters():
            t.copy_(t.clamp(-FP16_MAX, FP16_MAX).half().float())
    return model


# ---------------------------------------------------------------- export

def kv_names(prefix):
    return [f"{prefix}.{i}.{kv}" for i in range(N_LAYERS) for kv in ("key", "value")]


def export(model, arch, path, past_in, presents_out):
    seq, past = 8, (4 if past_in else 0)
    ids = torch.randint(0, V, (2, seq))
    mask = torch.ones(2, past + seq, dtype=torch.int64)
    pos = torch.arange(past, past + seq)[None].expand(2, -1).contiguous()
    kv = tuple(torch.randn(2, KV_HEADS[arch], past, HEAD_DIM) for _ in range(2 * N_LAYERS)) if past_in else ()
    total = "past_sequence_length + sequence_length" if past_in else "sequence_length"
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: total},
            "position_ids": {0: "batch_size", 1: "sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    inputs = ["input_ids", "attention_mask", "position_ids"] + (kv_names("past_key_values") if past_in else [])
    outputs = ["logits"] + (kv_names("present") if presents_out else [])
    for n in inputs[3:]:
        axes[n] = {0: "batch_size", 2: "past_sequence_length"}
    for n in outputs[1:]:
        axes[n] = {0: "batch_size", 2: total}
    model.export_presents = presents_out
    try:
        torch.onnx.export(model, (ids, mask, pos) + kv, path, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET[arch], do_constant_folding=True)
    finally:
        del model.export_presents
    return onnx.load(path)


def hook_tensors(graph, prefix, has_mid):
    """Residual stream after block 0: the one tensor made by an op of block 0 itself (not of a
    submodule; torch.onnx shares identical rotary subexpressions such as Llama's cos/sin Unsqueeze
    across layers, which block 1 then also reads) and read by block 1. The stream after attention
    ("mid", sequential blocks only) is the operand of the Add making it that is itself an Add of
    block 0, looking through Casts: HF's RMSNorm `.to(float32)` is a no-op the tracer records as a
    Cast, and the residual the block adds back is that Cast's output."""
    p0, p1 = prefix.format(0), prefix.format(1)
    made_any = {o: n for n in graph.node if n.name.startswith(p0) and n.op_type != "Constant" for o in n.output}
    made = {o: n for o, n in made_any.items() if "/" not in n.name[len(p0):]}
    read = {i for n in graph.node if n.name.startswith(p1) for i in n.input if i in made}
    assert len(read) == 1, read
    hook = read.pop()
    producer = made[hook]
    assert producer.op_type == "Add", producer
    if not has_mid:
        return hook, None
    def through_casts(t):
        while t in made_any and made_any[t].op_type == "Cast":
            t = made_any[t].input[0]
        return t
    mids = [t for t in map(through_casts, producer.input) if t in made and made[t].op_type == "Add"]
    assert len(mids) == 1, mids
    return hook, mids[0]


# ---------------------------------------------------------------- ONNX post-processing

def fp16_initializers(model):
    """Every FLOAT initializer stored as FLOAT16 (clipped to the float16 range), a Cast to FLOAT
    after it under the original name; compute stays float32."""
    g = model.graph
    casts, inits = [], []
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT:
            inits.append(t)
            continue
        a = np.clip(numpy_helper.to_array(t), -FP16_MAX, FP16_MAX).astype(np.float16)
        inits.append(numpy_helper.from_array(a, t.name + "_fp16"))
        casts.append(helper.make_node("Cast", [t.name + "_fp16"], [t.name], name=t.name + "_cast", to=TensorProto.FLOAT))
    del g.initializer[:]
    g.initializer.extend(inits)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model


def to_fp16_tensor(t):
    a = numpy_helper.to_array(t)
    with np.errstate(over="ignore"):
        return numpy_helper.from_array(np.clip(a, -FP16_MAX, FP16_MAX).astype(np.float16), t.name)


def fully_fp16(model):
    """float16 everywhere, as transformers.js's converter leaves model_fp16.onnx: initializers,
    Constant / ConstantOfShape values, Cast targets, graph inputs/outputs and value_info (values
    outside the float16 range clipped to ±65504: as −inf, finfo(float32).min would turn the padding
    mask's (1 − 1)·min into NaN)."""
    def graph(g):
        for i, t in enumerate(g.initializer):
            if t.data_type == TensorProto.FLOAT:
                g.initializer[i].CopyFrom(to_fp16_tensor(t))
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(to_fp16_tensor(a.t))
                elif a.type == onnx.AttributeProto.GRAPH:
                    graph(a.g)
                elif n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        for v in list(g.input) + list(g.output) + list(g.value_info):
            if v.type.tensor_type.elem_type == TensorProto.FLOAT:
                v.type.tensor_type.elem_type = TensorProto.FLOAT16
    graph(model.graph)
    return model


def merged_decoder(with_past, no_past, opset):
    """Optimum's legacy decoder_model_merged.onnx: outer inputs of the with-past model plus
    use_cache_branch bool [1]; one If whose then-branch is the with-past graph and else-branch the
    no-past graph, both outputting logits and present.*; initializers (deduplicated by content) in
    the outer graph, referenced from the branches."""
    outer, by_content, taken = [], {}, set()

    def hoist(g):
        rename = {}
        for t in g.initializer:
            key = (t.data_type, tuple(t.dims), hashlib.sha256(numpy_helper.to_array(t).tobytes()).hexdigest())
            if key not in by_content:
                name = t.name
                while name in taken:
                    name += "_"
                taken.add(name)
                c = onnx.TensorProto()
                c.CopyFrom(t)
                c.name = name
                outer.append(c)
                by_content[key] = name
            rename[t.name] = by_content[key]
        for n in g.node:
            for k, i in enumerate(n.input):
                if i in rename:
                    n.input[k] = rename[i]
        return rename

    hoist(with_past.graph)
    hoist(no_past.graph)
    then_g = helper.make_graph(list(with_past.graph.node), "with_past", [], list(with_past.graph.output))
    else_g = helper.make_graph(list(no_past.graph.node), "no_past", [], list(no_past.graph.output))
    names = [o.name for o in with_past.graph.output]
    iff = helper.make_node("If", ["use_cache_branch"], names, name="optimum::if", then_branch=then_g, else_branch=else_g)
    cond = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    g = helper.make_graph([iff], "merged", list(with_past.graph.input) + [cond], list(with_past.graph.output), outer)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="export_hf_lms.py")
    m.ir_version = with_past.ir_version
    return m


def check(path):
    try:
        onnx.checker.check_model(path, full_check=True)
        how = "full_check"
    except Exception as e:  # full_check runs strict shape inference, which the If merge can trip
        onnx.checker.check_model(path)
        how = f"check_model (full_check failed: {str(e).splitlines()[0][:120]})"
    size = os.path.getsize(path)
    print(f"  {os.path.basename(path)}: {size / 1e3:.0f} kB, onnx.checker {how}")
    return how


# ---------------------------------------------------------------- references

def feeds(ids, past_arch=None):
    Bn, Tn = ids.shape
    f = {"input_ids": ids.numpy(), "attention_mask": np.ones((Bn, Tn), np.int64),
         "position_ids": np.broadcast_to(np.arange(Tn, dtype=np.int64), (Bn, Tn)).copy()}
    if past_arch:
        for n in kv_names("past_key_values"):
            f[n] = np.zeros((Bn, KV_HEADS[past_arch], 0, HEAD_DIM), np.float32)
    return f


def reference(model, ids, round_recon_fp16=False):
    """splice's definitions (fixtures/tiny-neox/README.md), computed in float64."""
    m = model.double()
    mask = torch.ones_like(ids)
    pos = torch.arange(ids.shape[1])[None].expand(ids.shape[0], -1)
    run = lambda hook: m(ids, mask, pos, hook=hook)[0]
    with torch.no_grad():
        hook = {"layer": 0}
        logits_clean = run(hook)
        resid, resid_mid = hook["resid"], hook["mid"]
    g = torch.Generator().manual_seed(2)
    recon = resid + 0.1 * resid.std() * torch.randn(resid.shape, generator=g, dtype=torch.float64)
    recon = recon.float()
    if round_recon_fp16:
        recon = recon.half().float()
    recon = recon.double().requires_grad_(True)  # the stored float32 values, exactly
    logits_sp = run({"layer": 0, "replace": recon})
    lp_c, lp_s = F.log_softmax(logits_clean, -1), F.log_softmax(logits_sp, -1)
    kl = (lp_c.exp() * (lp_c - lp_s)).sum(-1)
    Bn, Tn = ids.shape
    ce = lambda lg: F.cross_entropy(lg[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), reduction="none").view(Bn, Tn - 1)
    ce_sp = ce(logits_sp)
    (gk,) = torch.autograd.grad(kl.mean(), recon, retain_graph=True)
    (gc,) = torch.autograd.grad(ce_sp.mean(), recon)
    with torch.no_grad():
        logits_zero = run({"layer": 0, "replace": torch.zeros_like(resid)})
    model.float()
    f = lambda x: x.detach().numpy().astype(np.float32)
    tensors = dict(input_ids=ids.numpy(), resid=f(resid), recon=f(recon), logits_clean=f(logits_clean), logits_spliced=f(logits_sp),
                   kl_per_token=f(kl), ce_clean_per_token=f(ce(logits_clean)), ce_spliced_per_token=f(ce_sp),
                   ce_zero_per_token=f(ce(logits_zero)), grad_kl_recon=f(gk), grad_ce_recon=f(gc))
    if resid_mid is not None:
        tensors["resid_mid"] = f(resid_mid)
    stats = dict(kl=kl.mean().item(), ce_clean=ce(logits_clean).mean().item(), ce_spliced=ce_sp.mean().item(),
                 ce_zero=ce(logits_zero).mean().item())
    return tensors, stats


def reference_fp16_constants(model, ids):
    """The reference of the fully float16 export: its Constant nodes hold float16 values (gelu_new's
    √(2/π) and 0.044715, LayerNorm's eps), so the reference uses those too, and recon rounded to
    float16; the arithmetic stays float64."""
    eps = {m: m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}
    try:
        hf_models.const_round = lambda c: float(np.float16(c))
        for m in eps:
            m.eps = float(np.float16(m.eps))
        return reference(model, ids, round_recon_fp16=True)
    finally:
        hf_models.const_round = float
        for m, e in eps.items():
            m.eps = e


def torch_logits(model, ids):
    with torch.no_grad():
        mask = torch.ones_like(ids)
        return model(ids, mask, torch.arange(ids.shape[1])[None].expand(ids.shape[0], -1))[0].numpy()


def self_check(path, arch, ids, want, tol, with_past):
    """ONNX (onnxruntime) logits against PyTorch's, the with-past model fed an empty past."""
    if ort is None:
        return "skipped: this python has no onnxruntime (see README.md, Checks)"
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    f = feeds(ids, arch if with_past else None)
    names = {i.name for i in s.get_inputs()}
    if "use_cache_branch" in names:
        f["use_cache_branch"] = np.array([False])
    for i in s.get_inputs():
        if i.type == "tensor(float16)":
            f[i.name] = f[i.name].astype(np.float16)
    got = s.run(["logits"], {k: v for k, v in f.items() if k in names})[0].astype(np.float32)
    err = float(np.abs(got - want).max() / np.abs(want).max())
    assert err <= tol, f"{path}: ONNX vs PyTorch logits rel. max error {err:.2e} > {tol:.0e}"
    return f"onnxruntime logits rel. max error {err:.1e}"


# ---------------------------------------------------------------- main

def save_reference(path, tensors, meta):
    st.save(path, tensors, metadata=dict(meta, tl_hook="blocks.0.hook_resid_post", layer="0", torch=torch.__version__,
                                         definitions="fixtures/tiny-neox/README.md; computed in float64"))


def main(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, V, (B, T), generator=g)
    report = {}
    for arch in ("gpt2", "neox", "llama"):
        model = make_model(arch)
        print(arch)
        p_np = f"{out}/{arch}.onnx"
        p_wp = f"{out}/{arch}-with-past.onnx"
        m_np = export(model, arch, p_np, past_in=False, presents_out=False)
        m_wp = export(model, arch, p_wp, past_in=True, presents_out=True)
        hook, mid = hook_tensors(m_np.graph, model.block_prefix, arch != "neox")
        hook_wp, mid_wp = hook_tensors(m_wp.graph, model.block_prefix, arch != "neox")
        meta = dict(hook_tensor=hook)
        if hook_wp != hook:
            meta["hook_tensor_with_past"] = hook_wp
        if arch != "neox":
            meta.update(tl_hook_mid="blocks.0.hook_resid_mid", hook_mid_tensor=mid)
            if mid_wp != mid:
                meta["hook_mid_tensor_with_past"] = mid_wp
        else:
            meta["no_tl_hook_mid"] = "parallel residual: blocks.L.hook_resid_mid does not exist"
        want = torch_logits(model, ids)

        def half_variant(name, to_half, make_reference, tol, ref_name, weights):
            """The with-past export at half width, checked against torch on the same rounded weights,
            with its float64 reference."""
            p = f"{out}/{name}"
            onnx.save(to_half(onnx.load(p_wp)), p)
            check(p)
            m16 = round_fp16_(make_model(arch))
            tensors, stats = make_reference(m16, ids)
            report[p] = self_check(p, arch, ids, torch_logits(m16, ids), tol, True)
            save_reference(f"{out}/{ref_name}.reference.safetensors", tensors,
                           dict(meta, hook_tensor=hook_wp, model=name, weights=weights))
            print(f"  {ref_name} reference", stats)

        for p, wp in ((p_np, False), (p_wp, True)):
            check(p)
            report[p] = self_check(p, arch, ids, want, 1e-4, wp)

        if arch == "gpt2":
            # Optimum's decoder_model.onnx (no past in, presents out) is the merged model's else-branch.
            p_tmp = f"{out}/.gpt2-no-past-presents.onnx"
            m_npp = export(model, arch, p_tmp, past_in=False, presents_out=True)
            os.remove(p_tmp)
            hook_m, mid_m = hook_tensors(m_npp.graph, model.block_prefix, True)
            merged_meta = dict(hook_tensor_merged=hook_m, hook_mid_tensor_merged=mid_m)
            p_m = f"{out}/gpt2-merged.onnx"
            onnx.save(merged_decoder(onnx.load(p_wp), m_npp, OPSET[arch]), p_m)
            check(p_m)
            report[p_m] = self_check(p_m, arch, ids, want, 1e-4, True)

            # float16 arithmetic: only a loose agreement is expected.
            half_variant("gpt2-with-past-fp16.onnx", fully_fp16, reference_fp16_constants, 2e-2, "gpt2-fp16",
                         "float16 (reference in float64 on the float16 weights and float16 constants, recon rounded to float16)")

        if arch == "neox":
            os.makedirs(f"{out}/neox-ext", exist_ok=True)
            for f_ in ("model.onnx", "model.onnx_data"):
                if os.path.exists(f"{out}/neox-ext/{f_}"):
                    os.remove(f"{out}/neox-ext/{f_}")
            onnx.save_model(onnx.load(p_wp), f"{out}/neox-ext/model.onnx", save_as_external_data=True,
                            all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=64)
            check(f"{out}/neox-ext/model.onnx")
            report[f"{out}/neox-ext/model.onnx"] = self_check(f"{out}/neox-ext/model.onnx", arch, ids, want, 1e-4, True)

        if arch == "llama":
            half_variant("llama-with-past-fp16w.onnx", fp16_initializers, reference, 1e-4, "llama-fp16w",
                         "float16 initializers, float32 compute (reference on the float16 weights)")

        tensors, stats = reference(model, ids)
        save_reference(f"{out}/{arch}.reference.safetensors", tensors, dict(meta, **(merged_meta if arch == "gpt2" else {})))
        print(" ", arch, "reference", stats, "metadata", meta)
    for p, r in report.items():
        print(f"self-check {os.path.basename(p)}: {r}")


if __name__ == "__main__":
    main(sys.argv[1])
