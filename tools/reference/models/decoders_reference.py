"""Plain-PyTorch reference for GPT-2 and T5 v1.0 (the semantics of Hugging Face's GPT2LMHeadModel and
T5ForConditionalGeneration, written from scratch as functions of a state dict) and the fixtures the .NET tests read.

Writes, for each model, tests/fixtures/models/<HF class>/ with
  config.json, model.safetensors  HF layout, tied copies (lm_head, encoder/decoder.embed_tokens) left out;
  io.safetensors                  inputs (with padding masks and labels), expected outputs in float64 and float32,
                                  and a greedy continuation of a prompt.

The weights are float32 (as HF stores them). "f64.*" outputs are computed from those weights upcast to float64;
"f32.*" in float32. Biases and norm scales are perturbed off their HF initial values (zeros and ones) so that a
model ignoring them fails the comparison.

Run from the repository root:  /usr/bin/python3 tools/reference/models/decoders_reference.py [--report]
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hf_folder import write_hf_folder, write_io  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")
REPORT = "--report" in sys.argv
MARGIN = 1e-3   # greedy steps must win by this much in float64, so float32 picks the same token

# ----------------------------------------------------------------------------------------------------------------
# shared pieces


def mask_bias(allowed, dtype):
    """Boolean [.., q, k] (True = may attend) -> additive bias: 0 or the dtype's lowest finite value (one value,
    never summed twice, like HF's 4-D masks)."""
    return torch.where(allowed, torch.zeros((), dtype=dtype), torch.tensor(torch.finfo(dtype).min, dtype=dtype))


def heads(x, n):
    b, s, w = x.shape
    return x.reshape(b, s, n, w // n).permute(0, 2, 1, 3)


def merge(x):
    b, n, s, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, s, n * d)


def softmax(x):
    e = torch.exp(x - x.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def cross_entropy(logits, labels):
    """Mean over labels != -100 of -log softmax(logits)[label]."""
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    keep = labels != -100
    picked = logp[keep].gather(-1, labels[keep].unsqueeze(-1)).squeeze(-1)
    return -picked.mean()


def cast(state, dtype):
    return {k: v.to(dtype) for k, v in state.items()}


def greedy(step_logits, ids, mask, max_new, eos, pad, stop_rows=True):
    """HF greedy search without a cache: each step recomputes the whole sequence. step_logits(ids, mask) -> [b, V]
    logits of the next token. Rows that produced eos continue with pad. Returns (sequences, [b, steps, V])."""
    done = torch.zeros(ids.shape[0], dtype=torch.bool)
    scores = []
    for _ in range(max_new):
        logits = step_logits(ids, mask)
        top2 = logits.topk(2, dim=-1).values
        margin = (top2[:, 0] - top2[:, 1])[~done]
        if margin.numel() and margin.min() < MARGIN:
            raise ValueError(f"greedy step too close to a tie (margin {margin.min():.2e}); pick another prompt")
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        scores.append(logits)
        ids = torch.cat([ids, nxt[:, None]], 1)
        if mask is not None:
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        if eos is not None and stop_rows:
            done = done | (nxt == eos)
            if bool(done.all()):
                break
    return ids, torch.stack(scores, 1)


def choose_eos(tokens, prompt_len, avoid):
    """An eos id that ends row 0 after at least two new tokens and never appears in row 1's continuation, so the
    fixture exercises a per-row stop (random models have no real eos)."""
    new0, new1 = tokens[0, prompt_len:].tolist(), tokens[1, prompt_len:].tolist()
    for j in range(1, len(new0) - 1):
        if new0[j] not in new0[:j] and new0[j] not in new1 and new0[j] not in avoid:
            return new0[j]
    raise ValueError("no clean eos candidate; pick another prompt")


# ----------------------------------------------------------------------------------------------------------------
# GPT-2 (Radford et al. 2019; HF modeling_gpt2): pre-norm blocks, learned positions, Conv1D weights [in, out]


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gpt2_init(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, inner, r = cfg["n_embd"], cfg["n_inner"], cfg["initializer_range"]
    proj_std = r / math.sqrt(2 * cfg["n_layer"])   # HF: every c_proj.weight, GPT-2 paper's 1/sqrt(N) residual scaling

    def normal(*shape, std=r):
        return torch.randn(*shape, generator=g) * std

    def perturbed(base, *shape):
        return base + 0.1 * torch.randn(*shape, generator=g)

    p = {"transformer.wte.weight": normal(cfg["vocab_size"], d), "transformer.wpe.weight": normal(cfg["n_positions"], d)}
    for i in range(cfg["n_layer"]):
        h = f"transformer.h.{i}."
        p[h + "ln_1.weight"], p[h + "ln_1.bias"] = perturbed(1.0, d), perturbed(0.0, d)
        p[h + "attn.c_attn.weight"], p[h + "attn.c_attn.bias"] = normal(d, 3 * d), perturbed(0.0, 3 * d)
        p[h + "attn.c_proj.weight"], p[h + "attn.c_proj.bias"] = normal(d, d, std=proj_std), perturbed(0.0, d)
        p[h + "ln_2.weight"], p[h + "ln_2.bias"] = perturbed(1.0, d), perturbed(0.0, d)
        p[h + "mlp.c_fc.weight"], p[h + "mlp.c_fc.bias"] = normal(d, inner), perturbed(0.0, inner)
        p[h + "mlp.c_proj.weight"], p[h + "mlp.c_proj.bias"] = normal(inner, d, std=proj_std), perturbed(0.0, d)
    p["transformer.ln_f.weight"], p["transformer.ln_f.bias"] = perturbed(1.0, d), perturbed(0.0, d)
    return {k: v.float() for k, v in p.items()}


def gpt2_forward(p, cfg, ids, mask=None, positions=None):
    """Returns (last hidden state after ln_f, logits). positions default to 0..s-1 (HF's forward without a cache)."""
    dtype = p["transformer.wte.weight"].dtype
    b, s = ids.shape
    n, eps, d = cfg["n_head"], cfg["layer_norm_epsilon"], cfg["n_embd"]
    if positions is None:
        positions = torch.arange(s).expand(b, s)
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][positions]
    allowed = torch.ones(s, s).tril().bool()[None, None]
    if mask is not None:
        allowed = allowed & mask.bool()[:, None, None, :]
    bias = mask_bias(allowed, dtype)

    def ln(x, name):
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * p[name + ".weight"] + p[name + ".bias"]

    def conv1d(x, name):   # y = x W + b with W stored [in, out]
        return x @ p[name + ".weight"] + p[name + ".bias"]

    for i in range(cfg["n_layer"]):
        h = f"transformer.h.{i}."
        q, k, v = conv1d(ln(x, h + "ln_1"), h + "attn.c_attn").split(d, dim=-1)
        q, k, v = heads(q, n), heads(k, n), heads(v, n)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // n) + bias
        x = x + conv1d(merge(softmax(scores) @ v), h + "attn.c_proj")
        x = x + conv1d(gelu_new(conv1d(ln(x, h + "ln_2"), h + "mlp.c_fc")), h + "mlp.c_proj")
    x = ln(x, "transformer.ln_f")
    return x, x @ p["transformer.wte.weight"].T   # lm_head tied to wte


def gpt2_loss(logits, labels):
    """Next-token loss: position t predicts label t+1 (HF shifts inside the LM head)."""
    return cross_entropy(logits[:, :-1], labels[:, 1:])


def generation_positions(mask):
    """HF generate for decoder-only models: positions count real tokens only (left padding gets position 1)."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def gpt2_fixture():
    cfg = {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
        "bos_token_id": 95, "embd_pdrop": 0.1, "eos_token_id": 95, "initializer_range": 0.2,
        "layer_norm_epsilon": 1e-5, "model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_inner": 64, "n_layer": 2,
        "n_positions": 24, "resid_pdrop": 0.1, "scale_attn_weights": True, "vocab_size": 96,
    }
    p32 = gpt2_init(cfg, seed=20210603)
    p64 = cast(p32, torch.float64)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, cfg["vocab_size"], (2, 8), generator=g)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0                       # right padding (training batches)
    ids[1, 5:] = 0
    labels = ids.masked_fill(mask == 0, -100)
    io = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    for tag, p in (("f64", p64), ("f32", p32)):
        hidden, logits = gpt2_forward(p, cfg, ids, mask)
        io[f"{tag}.hidden"], io[f"{tag}.logits"], io[f"{tag}.loss"] = hidden, logits, gpt2_loss(logits, labels)

    # greedy continuation of a left-padded prompt (HF's convention for decoder-only generation)
    prompt = torch.randint(0, cfg["vocab_size"] - 1, (2, 5), generator=g)
    pmask = torch.ones(2, 5, dtype=torch.long)
    pmask[1, :2] = 0
    prompt[1, :2] = 0

    def step(seq, m):
        return gpt2_forward(p64, cfg, seq, m, generation_positions(m))[1][:, -1]

    max_new = 6
    dry, _ = greedy(step, prompt, pmask, max_new, eos=None, pad=0)
    eos = choose_eos(dry, 5, avoid=prompt.flatten().tolist())
    cfg["eos_token_id"] = eos
    seqs, scores = greedy(step, prompt, pmask, max_new, eos=eos, pad=eos)   # GPT-2 has no pad: HF pads with eos
    io.update({"gen.input_ids": prompt, "gen.attention_mask": pmask, "gen.sequences": seqs, "gen.logits": scores})
    folder = os.path.join(OUT, "GPT2LMHeadModel")
    write_hf_folder(folder, cfg, p32)
    write_io(os.path.join(folder, "io.safetensors"), io,
             {"generator": "tools/reference/models/decoders_reference.py", "max_new_tokens": max_new, "eos_token_id": eos})
    if REPORT:
        print(f"GPT2LMHeadModel: loss f64 {io['f64.loss']:.10f} f32 {io['f32.loss']:.7f}; "
              f"f32 vs f64 logits max {(io['f32.logits'].double() - io['f64.logits']).abs().max():.2e}; "
              f"eos {eos}; sequences {seqs.tolist()}")
    return folder


def gpt2_classification_fixture():
    """HF GPT2ForSequenceClassification: a bias-free `score` on the hidden state of each row's rightmost token that
    is not pad_token_id. Rows: right-padded with the pad id, one with the pad id also mid-row (must not end it there),
    one without padding; three classes."""
    cfg = {
        "activation_function": "gelu_new", "architectures": ["GPT2ForSequenceClassification"], "attn_pdrop": 0.1,
        "bos_token_id": 95, "embd_pdrop": 0.1, "eos_token_id": 95, "pad_token_id": 95, "initializer_range": 0.2,
        "layer_norm_epsilon": 1e-5, "model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_inner": 64, "n_layer": 2,
        "n_positions": 24, "resid_pdrop": 0.1, "scale_attn_weights": True, "vocab_size": 96,
        "id2label": {"0": "negative", "1": "neutral", "2": "positive"},
        "label2id": {"negative": 0, "neutral": 1, "positive": 2},
    }
    p32 = gpt2_init(cfg, seed=20220617)
    g = torch.Generator().manual_seed(11)
    p32["score.weight"] = (torch.randn(3, cfg["n_embd"], generator=g) * cfg["initializer_range"]).float()
    pad = cfg["pad_token_id"]
    ids = torch.randint(0, pad, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    ids[0, 6:], mask[0, 6:] = pad, 0          # right padding
    ids[1, 2] = pad                           # a pad id inside the text (GPT-2's pad is its end-of-text token)
    ids[1, 7:], mask[1, 7:] = pad, 0
    labels = torch.tensor([2, 0, 1])
    last = (torch.arange(9) * (ids != pad).long()).argmax(-1)
    assert last.tolist() == [5, 6, 8], last.tolist()
    io = {"input_ids": ids, "attention_mask": mask, "labels": labels, "last_token": last}
    for tag, p in (("f32", p32), ("f64", cast(p32, torch.float64))):
        hidden, _ = gpt2_forward(p, cfg, ids, mask)
        logits = hidden[torch.arange(3), last] @ p["score.weight"].T
        io[f"{tag}.hidden"], io[f"{tag}.logits"] = hidden, logits
        io[f"{tag}.loss"] = cross_entropy(logits, labels)
    folder = os.path.join(OUT, "GPT2ForSequenceClassification")
    write_hf_folder(folder, cfg, p32)
    write_io(os.path.join(folder, "io.safetensors"), io, {"generator": "tools/reference/models/decoders_reference.py"})
    if REPORT:
        print(f"GPT2ForSequenceClassification: loss f64 {io['f64.loss']:.10f}; logits {io['f64.logits'].tolist()}")
    return folder


# ----------------------------------------------------------------------------------------------------------------
# T5 v1.0 (Raffel et al. 2020; HF modeling_t5): RMS norms without bias, bias-free linears, unscaled attention,
# relative position buckets shared by all layers of a stack, ReLU FFN, tied embeddings rescaled by d_model^-0.5


def relative_position_bucket(relative, bidirectional, num_buckets, max_distance):
    """relative = key position - query position (int64 tensor) -> bucket ids. Small distances get a bucket each,
    larger ones share logarithmically wider buckets up to max_distance, beyond which everything falls in the
    last bucket. Computed in float32 like the original Mesh TensorFlow code."""
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative > 0).long() * num_buckets
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)   # the future is bucket 0
    exact = num_buckets // 2
    log_scaled = torch.log(distance.float() / exact) / math.log(max_distance / exact) * (num_buckets - exact)
    large = (exact + log_scaled.long()).clamp(max=num_buckets - 1)   # .long() truncates toward zero
    return buckets + torch.where(distance < exact, distance, large)


def t5_init(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    f, d, kv, h, ff = cfg["initializer_factor"], cfg["d_model"], cfg["d_kv"], cfg["num_heads"], cfg["d_ff"]
    inner = h * kv

    def normal(*shape, std):
        return torch.randn(*shape, generator=g) * std

    def norm_scale():
        return f * 1.0 + 0.1 * torch.randn(d, generator=g)

    def attention(prefix, relative):
        a = {prefix + "q.weight": normal(inner, d, std=f * (d * kv) ** -0.5),   # 1/sqrt(d_kv) folded into q's init
             prefix + "k.weight": normal(inner, d, std=f * d ** -0.5),
             prefix + "v.weight": normal(inner, d, std=f * d ** -0.5),
             prefix + "o.weight": normal(d, inner, std=f * inner ** -0.5)}
        if relative:
            a[prefix + "relative_attention_bias.weight"] = normal(cfg["relative_attention_num_buckets"], h, std=f * d ** -0.5)
        return a

    def ffn(prefix):
        return {prefix + "wi.weight": normal(ff, d, std=f * d ** -0.5), prefix + "wo.weight": normal(d, ff, std=f * ff ** -0.5)}

    # HF draws shared with std f; half of that here: at full scale a random tied T5 copies its input token at every
    # step and the greedy fixture would be constant.
    p = {"shared.weight": normal(cfg["vocab_size"], d, std=f * 0.5)}
    for i in range(cfg["num_layers"]):
        b = f"encoder.block.{i}."
        p.update(attention(b + "layer.0.SelfAttention.", i == 0))
        p[b + "layer.0.layer_norm.weight"] = norm_scale()
        p.update(ffn(b + "layer.1.DenseReluDense."))
        p[b + "layer.1.layer_norm.weight"] = norm_scale()
    p["encoder.final_layer_norm.weight"] = norm_scale()
    for i in range(cfg["num_decoder_layers"]):
        b = f"decoder.block.{i}."
        p.update(attention(b + "layer.0.SelfAttention.", i == 0))
        p[b + "layer.0.layer_norm.weight"] = norm_scale()
        p.update(attention(b + "layer.1.EncDecAttention.", False))
        p[b + "layer.1.layer_norm.weight"] = norm_scale()
        p.update(ffn(b + "layer.2.DenseReluDense."))
        p[b + "layer.2.layer_norm.weight"] = norm_scale()
    p["decoder.final_layer_norm.weight"] = norm_scale()
    return {k: v.float() for k, v in p.items()}


def t5_stack(p, cfg, stack, ids, mask, encoder_hidden=None, encoder_mask=None):
    decoder = stack == "decoder"
    dtype = p["shared.weight"].dtype
    b, s = ids.shape
    n, kv, eps = cfg["num_heads"], cfg["d_kv"], cfg["layer_norm_epsilon"]
    layers = cfg["num_decoder_layers"] if decoder else cfg["num_layers"]

    def rms(x, name):   # no mean subtraction, no bias
        return p[name + ".weight"] * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def attention(prefix, x, source, bias):
        w = lambda name: p[prefix + name + ".weight"]
        q, k, v = heads(x @ w("q").T, n), heads(source @ w("k").T, n), heads(source @ w("v").T, n)
        return merge(softmax(q @ k.transpose(-1, -2) + bias) @ v) @ w("o").T   # no 1/sqrt(d_kv)

    allowed = torch.ones(b, 1, s, s, dtype=torch.bool) if mask is None else mask.bool()[:, None, None, :].expand(b, 1, s, s)
    if decoder:
        allowed = allowed & torch.ones(s, s).tril().bool()
    position = torch.arange(s)
    buckets = relative_position_bucket(position[None, :] - position[:, None], not decoder,
                                       cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"])
    table = p[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    self_bias = table[buckets].permute(2, 0, 1)[None] + mask_bias(allowed, dtype)   # block 0's table, every block
    cross_bias = None
    if decoder:
        cross_bias = mask_bias(encoder_mask.bool()[:, None, None, :], dtype)

    x = p["shared.weight"][ids]
    for i in range(layers):
        blk = f"{stack}.block.{i}.layer."
        x = x + attention(blk + "0.SelfAttention.", rms(x, blk + "0.layer_norm"), rms(x, blk + "0.layer_norm"), self_bias)
        ff = "1"
        if decoder:
            x = x + attention(blk + "1.EncDecAttention.", rms(x, blk + "1.layer_norm"), encoder_hidden, cross_bias)
            ff = "2"
        h = rms(x, blk + ff + ".layer_norm")
        x = x + torch.relu(h @ p[blk + ff + ".DenseReluDense.wi.weight"].T) @ p[blk + ff + ".DenseReluDense.wo.weight"].T
    return rms(x, f"{stack}.final_layer_norm")


def shift_right(labels, start, pad):
    """Teacher forcing: the decoder reads <start> y_1 .. y_{n-1}; ignored labels (-100) become pad."""
    shifted = torch.cat([torch.full_like(labels[:, :1], start), labels[:, :-1]], 1)
    return shifted.masked_fill(shifted == -100, pad)


def t5_forward(p, cfg, ids, mask, decoder_ids):
    enc = t5_stack(p, cfg, "encoder", ids, mask)
    dec = t5_stack(p, cfg, "decoder", decoder_ids, None, enc, mask)
    return enc, dec, (dec * cfg["d_model"] ** -0.5) @ p["shared.weight"].T


def t5_fixture():
    cfg = {
        "architectures": ["T5ForConditionalGeneration"], "d_ff": 40, "d_kv": 4, "d_model": 24,
        "decoder_start_token_id": 0, "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "relu",
        "initializer_factor": 1.0, "is_encoder_decoder": True, "layer_norm_epsilon": 1e-6, "model_type": "t5",
        "num_decoder_layers": 3, "num_heads": 4, "num_layers": 2, "pad_token_id": 0,
        "relative_attention_max_distance": 6, "relative_attention_num_buckets": 8, "tie_word_embeddings": True,
        "vocab_size": 96,
    }
    p32 = t5_init(cfg, seed=20220601)
    p64 = cast(p32, torch.float64)
    g = torch.Generator().manual_seed(13)
    ids = torch.randint(2, cfg["vocab_size"], (2, 9), generator=g)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    ids[1, 6:] = cfg["pad_token_id"]
    labels = torch.randint(2, cfg["vocab_size"], (2, 7), generator=g)
    labels[1, 5:] = -100
    decoder_ids = shift_right(labels, cfg["decoder_start_token_id"], cfg["pad_token_id"])
    io = {"input_ids": ids, "attention_mask": mask, "labels": labels, "decoder_input_ids": decoder_ids}
    for tag, p in (("f64", p64), ("f32", p32)):
        enc, dec, logits = t5_forward(p, cfg, ids, mask, decoder_ids)
        io[f"{tag}.encoder_hidden"], io[f"{tag}.hidden"], io[f"{tag}.logits"] = enc, dec, logits
        io[f"{tag}.loss"] = cross_entropy(logits, labels)   # no shift: labels align with the shifted decoder input

    prompt = torch.randint(2, cfg["vocab_size"], (2, 7), generator=g)
    pmask = torch.ones(2, 7, dtype=torch.long)
    pmask[0, 5:] = 0
    prompt[0, 5:] = cfg["pad_token_id"]
    enc = t5_stack(p64, cfg, "encoder", prompt, pmask)

    def step(dec, _):
        d = t5_stack(p64, cfg, "decoder", dec, None, enc, pmask)
        return ((d * cfg["d_model"] ** -0.5) @ p64["shared.weight"].T)[:, -1]

    max_new = 6
    start = torch.full((2, 1), cfg["decoder_start_token_id"])
    dry, _ = greedy(step, start, None, max_new, eos=None, pad=cfg["pad_token_id"])
    eos = choose_eos(dry, 1, avoid=[cfg["pad_token_id"]])
    cfg["eos_token_id"] = eos
    seqs, scores = greedy(step, start, None, max_new, eos=eos, pad=cfg["pad_token_id"])
    io.update({"gen.input_ids": prompt, "gen.attention_mask": pmask, "gen.sequences": seqs, "gen.logits": scores})
    folder = os.path.join(OUT, "T5ForConditionalGeneration")
    write_hf_folder(folder, cfg, p32)
    write_io(os.path.join(folder, "io.safetensors"), io,
             {"generator": "tools/reference/models/decoders_reference.py", "max_new_tokens": max_new, "eos_token_id": eos})
    if REPORT:
        print(f"T5ForConditionalGeneration: loss f64 {io['f64.loss']:.10f} f32 {io['f32.loss']:.7f}; "
              f"f32 vs f64 logits max {(io['f32.logits'].double() - io['f64.logits']).abs().max():.2e}; "
              f"eos {eos}; sequences {seqs.tolist()}")
    return folder


def check_buckets():
    """The bucket function against values worked out by hand from the definition."""
    rel = torch.tensor([-200, -128, -20, -16, -9, -8, -7, -1, 0, 1, 7, 8, 9, 16, 20, 128, 200])
    # t5-small defaults (32 buckets, max distance 128). Bidirectional: 16 per direction, 8 exact;
    # beyond, 8 + floor(log(n/8)/log(16)*8), capped at 15; keys after the query add 16.
    assert relative_position_bucket(rel, True, 32, 128).tolist() == \
        [15, 15, 10, 10, 8, 8, 7, 1, 0, 17, 23, 24, 24, 26, 26, 31, 31], relative_position_bucket(rel, True, 32, 128).tolist()
    # causal: 32 buckets for the past, 16 exact; beyond, 16 + floor(log(n/16)/log(8)*16), capped at 31; future -> 0.
    assert relative_position_bucket(rel, False, 32, 128).tolist() == \
        [31, 31, 17, 16, 9, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], relative_position_bucket(rel, False, 32, 128).tolist()


def main():
    torch.set_num_threads(1)
    check_buckets()
    folders = [gpt2_fixture(), gpt2_classification_fixture(), t5_fixture()]
    for folder in folders:
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        assert size < 150_000, f"{folder}: {size} bytes"
        if REPORT:
            print(f"{os.path.relpath(folder, ROOT)}: {size} bytes")


if __name__ == "__main__":
    main()
