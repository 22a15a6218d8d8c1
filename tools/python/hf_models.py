"""Small re-creations of Hugging Face transformers' eager modeling code for GPT-2, GPT-NeoX and Llama.

The ONNX graph patterns are what matters (splice must ingest Optimum / transformers.js exports), so
each forward follows the op sequence of transformers' code: GPT-2 and GPT-NeoX as in transformers
4.36 (registered causal `bias` buffer sliced `[k - q : k, :k]`, additive `(1 - mask) * finfo.min`
padding mask, past concatenated on dim -2), Llama as in 4.38-4.40 (rotary computed from position_ids,
4-D causal mask full(min) -> triu -> masked_fill where attention_mask == 0, repeat_kv by expand +
reshape). Module names match HF's so ONNX node names do (`/transformer/h.0/...`).

Every forward takes `hook`: {"layer": L, "replace": tensor or None}; it records the residual stream
after block L in hook["resid"] (and the stream after attention in hook["mid"] where one exists) and,
with "replace", splices that tensor in. Unused while exporting.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

V, D, N_LAYERS, CTX = 512, 64, 2, 64
D_MLP = 2 * D  # config.n_inner / intermediate_size: smaller than 4·d to keep the files small


def const(c):
    """A literal of the modeling code. export_hf_lms.py swaps this for float16 rounding when it
    computes the reference of the float16 export, whose Constant nodes hold float16 values."""
    return const_round(c)


const_round = float


def finfo_min(dtype):
    return torch.finfo(dtype).min


def upcast(dtype):
    # HF upcasts half precision to float32 here; the float64 reference must not be downcast.
    return torch.float64 if dtype == torch.float64 else torch.float32


def pairs(past):
    """Optimum's flat past_key_values.{i}.key/value inputs as HF's legacy ((k, v), ...) tuple."""
    # torch.onnx appends the defaults of unnamed forward parameters (hook=None) to the positional args.
    past = tuple(p for p in past if p is not None)
    return tuple((past[i], past[i + 1]) for i in range(0, len(past), 2)) if past else None


def outputs(model, logits, presents):
    """(logits, presents) for Python callers; for torch.onnx the flat outputs of the export being
    made (model.export_presents: False for `text-generation`, True for `-with-past`), because the
    exported module must be the HF model itself for the node and initializer names to match."""
    mode = getattr(model, "export_presents", None)
    if mode is None:
        return logits, presents
    return (logits,) + tuple(t for kv in presents for t in kv) if mode else logits


def run_blocks(blocks, hidden_states, hook, call):
    presents = ()
    for i, block in enumerate(blocks):
        out = call(i, block, hidden_states)
        hidden_states = out[0]
        presents = presents + (out[1],)
        if hook is not None and i == hook["layer"]:
            hook["resid"] = hidden_states
            hook["mid"] = getattr(block, "_mid", None)
            if hook.get("replace") is not None:
                hidden_states = hook["replace"]
    return hidden_states, presents


# ---------------------------------------------------------------- GPT-2 (modeling_gpt2.py)

class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(const(math.sqrt(2.0 / math.pi)) * (x + const(0.044715) * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module):
    def __init__(self, n_head=4):
        super().__init__()
        self.register_buffer("bias", torch.tril(torch.ones((CTX, CTX), dtype=torch.bool)).view(1, 1, CTX, CTX),
                             persistent=False)
        self.embed_dim, self.num_heads = D, n_head
        self.head_dim = D // n_head
        self.split_size = D
        self.c_attn = Conv1D(3 * D, D)
        self.c_proj = Conv1D(D, D)

    def _attn(self, query, key, value, attention_mask=None):
        attn_weights = torch.matmul(query, key.transpose(-1, -2))
        attn_weights = attn_weights / torch.full([], value.size(-1) ** 0.5, dtype=attn_weights.dtype)
        query_length, key_length = query.size(-2), key.size(-2)
        causal_mask = self.bias[:, :, key_length - query_length : key_length, :key_length]
        mask_value = torch.full([], finfo_min(attn_weights.dtype), dtype=attn_weights.dtype)
        attn_weights = torch.where(causal_mask, attn_weights.to(attn_weights.dtype), mask_value)
        if attention_mask is not None:
            attn_weights = attn_weights + attention_mask
        attn_weights = F.softmax(attn_weights, dim=-1)
        attn_weights = attn_weights.type(value.dtype)
        return torch.matmul(attn_weights, value)

    def _split_heads(self, tensor):
        new_shape = tensor.size()[:-1] + (self.num_heads, self.head_dim)
        return tensor.view(new_shape).permute(0, 2, 1, 3)

    def _merge_heads(self, tensor):
        tensor = tensor.permute(0, 2, 1, 3).contiguous()
        new_shape = tensor.size()[:-2] + (self.num_heads * self.head_dim,)
        return tensor.view(new_shape)

    def forward(self, hidden_states, layer_past=None, attention_mask=None):
        query, key, value = self.c_attn(hidden_states).split(self.split_size, dim=2)
        query, key, value = self._split_heads(query), self._split_heads(key), self._split_heads(value)
        if layer_past is not None:
            past_key, past_value = layer_past
            key = torch.cat((past_key, key), dim=-2)
            value = torch.cat((past_value, value), dim=-2)
        present = (key, value)
        attn_output = self._merge_heads(self._attn(query, key, value, attention_mask))
        return self.c_proj(attn_output), present


class GPT2MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc, self.c_proj = Conv1D(D_MLP, D), Conv1D(D, D_MLP)

    def forward(self, hidden_states):
        return self.c_proj(gelu_new(self.c_fc(hidden_states)))


class GPT2Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(D, eps=1e-5), GPT2Attention()
        self.ln_2, self.mlp = nn.LayerNorm(D, eps=1e-5), GPT2MLP()

    def forward(self, hidden_states, layer_past=None, attention_mask=None):
        residual = hidden_states
        attn_output, present = self.attn(self.ln_1(hidden_states), layer_past=layer_past, attention_mask=attention_mask)
        hidden_states = attn_output + residual
        self._mid = hidden_states
        residual = hidden_states
        hidden_states = residual + self.mlp(self.ln_2(hidden_states))
        return hidden_states, present


class GPT2Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(CTX, D)
        self.h = nn.ModuleList([GPT2Block() for _ in range(N_LAYERS)])
        self.ln_f = nn.LayerNorm(D, eps=1e-5)

    def forward(self, input_ids, past_key_values=None, attention_mask=None, position_ids=None, hook=None):
        dtype = self.wte.weight.dtype
        input_shape = input_ids.size()
        input_ids = input_ids.view(-1, input_shape[-1])
        batch_size = input_ids.shape[0]
        position_ids = position_ids.view(-1, input_shape[-1])
        if past_key_values is None:
            past_key_values = tuple([None] * len(self.h))
        attention_mask = attention_mask.view(batch_size, -1)
        attention_mask = attention_mask[:, None, None, :]
        attention_mask = attention_mask.to(dtype=dtype)
        attention_mask = (1.0 - attention_mask) * finfo_min(dtype)
        hidden_states = self.wte(input_ids) + self.wpe(position_ids)
        output_shape = input_shape + (hidden_states.size(-1),)
        hidden_states, presents = run_blocks(
            self.h, hidden_states, hook,
            lambda i, b, x: b(x, layer_past=past_key_values[i], attention_mask=attention_mask))
        hidden_states = self.ln_f(hidden_states).view(output_shape)
        return hidden_states, presents


class GPT2LMHeadModel(nn.Module):
    arch, block_prefix = "gpt2", "/transformer/h.{}/"

    def __init__(self):
        super().__init__()
        self.transformer = GPT2Model()
        self.lm_head = nn.Linear(D, V, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as tie_word_embeddings does

    def forward(self, input_ids, attention_mask, position_ids, *past, hook=None):
        h, presents = self.transformer(input_ids, pairs(past), attention_mask, position_ids, hook)
        return outputs(self, self.lm_head(h), presents)


# ---------------------------------------------------------------- GPT-NeoX (modeling_gpt_neox.py)

class GPTNeoXRotaryEmbedding(nn.Module):
    def __init__(self, dim, max_position_embeddings=CTX, base=10000):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.max_seq_len_cached = max_position_embeddings
        t = torch.arange(max_position_embeddings, dtype=torch.int64).type_as(inv_freq)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self, x, seq_len=None):
        return self.cos_cached[:seq_len], self.sin_cached[:seq_len]


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def neox_apply_rotary_pos_emb(q, k, cos, sin, position_ids, unsqueeze_dim=1):
    cos = cos[position_ids].unsqueeze(unsqueeze_dim)
    sin = sin[position_ids].unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


class GPTNeoXAttention(nn.Module):
    def __init__(self, n_head=4, rotary_pct=0.25):
        super().__init__()
        self.num_attention_heads, self.hidden_size = n_head, D
        self.head_size = D // n_head
        self.rotary_ndims = int(self.head_size * rotary_pct)
        self.register_buffer("bias", torch.tril(torch.ones((CTX, CTX), dtype=torch.bool)).view(1, 1, CTX, CTX),
                             persistent=False)
        self.rotary_emb = GPTNeoXRotaryEmbedding(self.rotary_ndims)
        self.norm_factor = self.head_size ** -0.5
        self.query_key_value = nn.Linear(D, 3 * D)
        self.dense = nn.Linear(D, D)

    def forward(self, hidden_states, attention_mask, position_ids, layer_past=None):
        has_layer_past = layer_past is not None
        qkv = self.query_key_value(hidden_states)
        new_qkv_shape = qkv.size()[:-1] + (self.num_attention_heads, 3 * self.head_size)
        qkv = qkv.view(*new_qkv_shape)
        query = qkv[..., : self.head_size].permute(0, 2, 1, 3)
        key = qkv[..., self.head_size : 2 * self.head_size].permute(0, 2, 1, 3)
        value = qkv[..., 2 * self.head_size :].permute(0, 2, 1, 3)
        query_rot, query_pass = query[..., : self.rotary_ndims], query[..., self.rotary_ndims :]
        key_rot, key_pass = key[..., : self.rotary_ndims], key[..., self.rotary_ndims :]
        seq_len = key.shape[-2]
        if has_layer_past:
            seq_len += layer_past[0].shape[-2]
        cos, sin = self.rotary_emb(value, seq_len=seq_len)
        query, key = neox_apply_rotary_pos_emb(query_rot, key_rot, cos, sin, position_ids)
        query = torch.cat((query, query_pass), dim=-1)
        key = torch.cat((key, key_pass), dim=-1)
        if has_layer_past:
            key = torch.cat((layer_past[0], key), dim=-2)
            value = torch.cat((layer_past[1], value), dim=-2)
        present = (key, value)
        attn_output = self._attn(query, key, value, attention_mask)
        attn_output = attn_output.permute(0, 2, 1, 3).contiguous()
        attn_output = attn_output.view(attn_output.size(0), attn_output.size(1), self.num_attention_heads * self.head_size)
        return self.dense(attn_output), present

    def _attn(self, query, key, value, attention_mask=None):
        batch_size, num_attention_heads, query_length, attn_head_size = query.size()
        key_length = key.size(-2)
        causal_mask = self.bias[:, :, key_length - query_length : key_length, :key_length]
        query = query.view(batch_size * num_attention_heads, query_length, attn_head_size)
        key = key.view(batch_size * num_attention_heads, key_length, attn_head_size)
        attn_scores = torch.zeros(batch_size * num_attention_heads, query_length, key_length, dtype=query.dtype)
        attn_scores = torch.baddbmm(attn_scores, query, key.transpose(1, 2), beta=1.0, alpha=self.norm_factor)
        attn_scores = attn_scores.view(batch_size, num_attention_heads, query_length, key_length)
        mask_value = torch.tensor(finfo_min(attn_scores.dtype), dtype=attn_scores.dtype)
        attn_scores = torch.where(causal_mask, attn_scores, mask_value)
        if attention_mask is not None:
            attn_scores = attn_scores + attention_mask
        attn_weights = F.softmax(attn_scores, dim=-1).to(value.dtype)
        return torch.matmul(attn_weights, value)


class GPTNeoXMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense_h_to_4h, self.dense_4h_to_h = nn.Linear(D, D_MLP), nn.Linear(D_MLP, D)

    def forward(self, hidden_states):
        return self.dense_4h_to_h(F.gelu(self.dense_h_to_4h(hidden_states)))


class GPTNeoXLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(D, eps=1e-5)
        self.post_attention_layernorm = nn.LayerNorm(D, eps=1e-5)
        self.attention, self.mlp = GPTNeoXAttention(), GPTNeoXMLP()

    def forward(self, hidden_states, attention_mask=None, position_ids=None, layer_past=None):
        attn_output, present = self.attention(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                              position_ids=position_ids, layer_past=layer_past)
        # use_parallel_residual=True: x = x + attn(ln1(x)) + mlp(ln2(x)); no mid-block stream.
        mlp_output = self.mlp(self.post_attention_layernorm(hidden_states))
        hidden_states = mlp_output + attn_output + hidden_states
        return hidden_states, present


class GPTNeoXModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_in = nn.Embedding(V, D)
        self.layers = nn.ModuleList([GPTNeoXLayer() for _ in range(N_LAYERS)])
        self.final_layer_norm = nn.LayerNorm(D, eps=1e-5)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, hook=None):
        dtype = self.embed_in.weight.dtype
        batch_size, seq_length = input_ids.size()
        if past_key_values is None:
            past_key_values = tuple([None] * len(self.layers))
        attention_mask = attention_mask.view(batch_size, -1)
        attention_mask = attention_mask[:, None, None, :]
        attention_mask = attention_mask.to(dtype=dtype)
        attention_mask = (1.0 - attention_mask) * finfo_min(dtype)
        hidden_states = self.embed_in(input_ids)
        hidden_states, presents = run_blocks(
            self.layers, hidden_states, hook,
            lambda i, b, x: b(x, attention_mask=attention_mask, position_ids=position_ids, layer_past=past_key_values[i]))
        return self.final_layer_norm(hidden_states), presents


class GPTNeoXForCausalLM(nn.Module):
    arch, block_prefix = "neox", "/gpt_neox/layers.{}/"

    def __init__(self):
        super().__init__()
        self.gpt_neox = GPTNeoXModel()
        self.embed_out = nn.Linear(D, V, bias=False)

    def forward(self, input_ids, attention_mask, position_ids, *past, hook=None):
        h, presents = self.gpt_neox(input_ids, attention_mask, position_ids, pairs(past), hook)
        return outputs(self, self.embed_out(h), presents)


# ---------------------------------------------------------------- Llama (modeling_llama.py)

class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size=D, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(upcast(input_dtype))
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, dim, base=10000):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @torch.no_grad()
    def forward(self, x, position_ids):
        inv_freq_expanded = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        position_ids_expanded = position_ids[:, None, :].float()
        freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)


def llama_apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class LlamaAttention(nn.Module):
    def __init__(self, n_head=4, n_kv=2):
        super().__init__()
        self.hidden_size, self.num_heads, self.num_key_value_heads = D, n_head, n_kv
        self.head_dim = D // n_head
        self.num_key_value_groups = n_head // n_kv
        self.q_proj = nn.Linear(D, n_head * self.head_dim, bias=False)
        self.k_proj = nn.Linear(D, n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(D, n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_head * self.head_dim, D, bias=False)
        self.rotary_emb = LlamaRotaryEmbedding(self.head_dim)

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None):
        bsz, q_len, _ = hidden_states.size()
        query_states = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary_emb(value_states, position_ids)
        query_states, key_states = llama_apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if past_key_value is not None:
            key_states = torch.cat([past_key_value[0], key_states], dim=-2)
            value_states = torch.cat([past_key_value[1], value_states], dim=-2)
        present = (key_states, value_states)
        key_states = repeat_kv(key_states, self.num_key_value_groups)
        value_states = repeat_kv(value_states, self.num_key_value_groups)
        attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) / math.sqrt(self.head_dim)
        if attention_mask is not None:
            causal_mask = attention_mask[:, :, :, : key_states.shape[-2]]
            attn_weights = attn_weights + causal_mask
        attn_weights = F.softmax(attn_weights, dim=-1, dtype=upcast(query_states.dtype)).to(query_states.dtype)
        attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).contiguous()
        attn_output = attn_output.view(bsz, q_len, self.hidden_size)
        return self.o_proj(attn_output), present


class LlamaMLP(nn.Module):
    def __init__(self, intermediate=D_MLP):
        super().__init__()
        self.gate_proj = nn.Linear(D, intermediate, bias=False)
        self.up_proj = nn.Linear(D, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn, self.mlp = LlamaAttention(), LlamaMLP()
        self.input_layernorm, self.post_attention_layernorm = LlamaRMSNorm(), LlamaRMSNorm()

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states, present = self.self_attn(hidden_states, attention_mask, position_ids, past_key_value)
        hidden_states = residual + hidden_states
        self._mid = hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = residual + hidden_states
        return hidden_states, present


class LlamaModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, D)
        self.layers = nn.ModuleList([LlamaDecoderLayer() for _ in range(N_LAYERS)])
        self.norm = LlamaRMSNorm()

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, hook=None):
        inputs_embeds = self.embed_tokens(input_ids)
        past_seen_tokens = past_key_values[0][0].shape[-2] if past_key_values is not None else 0
        if past_key_values is None:
            past_key_values = tuple([None] * len(self.layers))
        cache_position = torch.arange(past_seen_tokens, past_seen_tokens + inputs_embeds.shape[1])
        causal_mask = self._update_causal_mask(attention_mask, inputs_embeds, cache_position)
        hidden_states, presents = run_blocks(
            self.layers, inputs_embeds, hook,
            lambda i, b, x: b(x, attention_mask=causal_mask, position_ids=position_ids, past_key_value=past_key_values[i]))
        return self.norm(hidden_states), presents

    def _update_causal_mask(self, attention_mask, input_tensor, cache_position):
        dtype = input_tensor.dtype
        min_dtype = finfo_min(dtype)
        sequence_length = input_tensor.shape[1]
        target_length = attention_mask.shape[-1]
        causal_mask = torch.full((sequence_length, target_length), fill_value=min_dtype, dtype=dtype)
        causal_mask = torch.triu(causal_mask, diagonal=1)
        causal_mask *= torch.arange(target_length) > cache_position.reshape(-1, 1)
        causal_mask = causal_mask[None, None, :, :].expand(input_tensor.shape[0], 1, -1, -1)
        causal_mask = causal_mask.clone()
        # HF writes this into causal_mask[..., :mask_length]; with a legacy (concatenated) past the
        # mask covers every key, so the slice is the whole tensor.
        padding_mask = causal_mask.eq(0.0) * attention_mask[:, None, None, :].eq(0.0)
        return causal_mask.masked_fill(padding_mask, min_dtype)


class LlamaForCausalLM(nn.Module):
    arch, block_prefix = "llama", "/model/layers.{}/"

    def __init__(self):
        super().__init__()
        self.model = LlamaModel()
        self.lm_head = nn.Linear(D, V, bias=False)

    def forward(self, input_ids, attention_mask, position_ids, *past, hook=None):
        h, presents = self.model(input_ids, attention_mask, position_ids, pairs(past), hook)
        return outputs(self, self.lm_head(h), presents)


ARCHS = {"gpt2": GPT2LMHeadModel, "neox": GPTNeoXForCausalLM, "llama": LlamaForCausalLM}
KV_HEADS = {"gpt2": 4, "neox": 4, "llama": 2}
HEAD_DIM = D // 4
