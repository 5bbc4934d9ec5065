#!/usr/bin/python3
"""The PyTorch side of `mpo-bench train`: the same tiny model (built from the same config.json, HF semantics, written
idiomatically with torch.nn.functional), the same random batches shape, AdamW with HF's no-decay groups, clipping at
1.0, dropout as configured; prints one JSON line with tokens/s and the peak resident set.

    /usr/bin/python3 bench/pytorch/train_step.py --config models/tiny-gpt2/config.json --batch 16 --seq 128 \
        --steps 30 --warmup 5 --threads 2

Debian's python3-torch 1.13 with OpenBLAS (libopenblas0-pthread); never a dependency of Mpo itself.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Gpt2(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, n = c["n_embd"], c["n_layer"]
        inner = c.get("n_inner") or 4 * d
        self.c, self.heads = c, c["n_head"]
        self.wte, self.wpe = nn.Embedding(c["vocab_size"], d), nn.Embedding(c["n_positions"], d)
        self.blocks = nn.ModuleList()
        for _ in range(n):
            b = nn.Module()
            b.ln_1, b.ln_2 = nn.LayerNorm(d, eps=c["layer_norm_epsilon"]), nn.LayerNorm(d, eps=c["layer_norm_epsilon"])
            b.c_attn, b.c_proj, b.c_fc, b.mlp_proj = nn.Linear(d, 3 * d), nn.Linear(d, d), nn.Linear(d, inner), nn.Linear(inner, d)
            self.blocks.append(b)
        self.ln_f = nn.LayerNorm(d, eps=c["layer_norm_epsilon"])
        self.drop = c.get("resid_pdrop", 0.1)

    def forward(self, ids):
        b, s = ids.shape
        d, h = self.c["n_embd"], self.heads
        x = F.dropout(self.wte(ids) + self.wpe(torch.arange(s)), self.drop, self.training)
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        for blk in self.blocks:
            q, k, v = blk.c_attn(blk.ln_1(x)).split(d, dim=-1)
            q, k, v = (t.view(b, s, h, d // h).transpose(1, 2) for t in (q, k, v))
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // h)
            probs = F.dropout(scores.masked_fill(~causal, torch.finfo(scores.dtype).min).softmax(-1), self.drop, self.training)
            x = x + F.dropout(blk.c_proj((probs @ v).transpose(1, 2).reshape(b, s, d)), self.drop, self.training)
            x = x + F.dropout(blk.mlp_proj(F.gelu(blk.c_fc(blk.ln_2(x)), approximate="tanh")), self.drop, self.training)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.c, self.heads = c, c["num_attention_heads"]
        self.word, self.pos, self.types = (nn.Embedding(c["vocab_size"], d), nn.Embedding(c["max_position_embeddings"], d),
                                          nn.Embedding(c["type_vocab_size"], d))
        self.emb_ln = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList()
        for _ in range(c["num_hidden_layers"]):
            l = nn.Module()
            l.q, l.k, l.v, l.o = (nn.Linear(d, d) for _ in range(4))
            l.ln1, l.ln2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
            l.inter, l.out = nn.Linear(d, c["intermediate_size"]), nn.Linear(c["intermediate_size"], d)
            self.layers.append(l)
        self.transform, self.transform_ln = nn.Linear(d, d), nn.LayerNorm(d, eps=eps)
        self.bias = nn.Parameter(torch.zeros(c["vocab_size"]))
        self.drop, self.attn_drop = c["hidden_dropout_prob"], c["attention_probs_dropout_prob"]

    def forward(self, ids, labels):
        b, s = ids.shape
        d, h = self.c["hidden_size"], self.heads
        x = self.word(ids) + self.pos(torch.arange(s)) + self.types(torch.zeros_like(ids))
        x = F.dropout(self.emb_ln(x), self.drop, self.training)
        for l in self.layers:
            q, k, v = (t(x).view(b, s, h, d // h).transpose(1, 2) for t in (l.q, l.k, l.v))
            probs = F.dropout(((q @ k.transpose(-1, -2)) / math.sqrt(d // h)).softmax(-1), self.attn_drop, self.training)
            x = l.ln1(x + F.dropout(l.o((probs @ v).transpose(1, 2).reshape(b, s, d)), self.drop, self.training))
            x = l.ln2(x + F.dropout(l.out(F.gelu(l.inter(x))), self.drop, self.training))
        logits = self.transform_ln(F.gelu(self.transform(x))) @ self.word.weight.T + self.bias
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def bucket(relative, bidirectional, buckets, max_distance):
    """T5's relative position bucket (Raffel et al. 2020 §2.1; HF's _relative_position_bucket)."""
    out = torch.zeros_like(relative)
    if bidirectional:
        buckets //= 2
        out += (relative > 0).long() * buckets
        relative = relative.abs()
    else:
        relative = -torch.clamp(relative, max=0)
    exact = buckets // 2
    large = exact + (torch.log(relative.float() / exact) / math.log(max_distance / exact) * (buckets - exact)).long()
    large = torch.clamp(large, max=buckets - 1)
    return out + torch.where(relative < exact, relative, large)


class T5(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, inner, ff = c["d_model"], c["num_heads"] * c["d_kv"], c["d_ff"]
        self.c = c
        self.shared = nn.Embedding(c["vocab_size"], d)

        def attention():
            a = nn.Module()
            a.q, a.k, a.v, a.o = nn.Linear(d, inner, bias=False), nn.Linear(d, inner, bias=False), nn.Linear(d, inner, bias=False), nn.Linear(inner, d, bias=False)
            return a

        def block(cross):
            b = nn.Module()
            b.self_attn, b.ln1 = attention(), nn.Parameter(torch.ones(d))
            if cross:
                b.cross, b.ln_cross = attention(), nn.Parameter(torch.ones(d))
            b.wi, b.wo, b.ln2 = nn.Linear(d, ff, bias=False), nn.Linear(ff, d, bias=False), nn.Parameter(torch.ones(d))
            return b

        self.encoder = nn.ModuleList(block(False) for _ in range(c["num_layers"]))
        self.decoder = nn.ModuleList(block(True) for _ in range(c.get("num_decoder_layers") or c["num_layers"]))
        self.enc_bias = nn.Embedding(c["relative_attention_num_buckets"], c["num_heads"])
        self.dec_bias = nn.Embedding(c["relative_attention_num_buckets"], c["num_heads"])
        self.enc_ln, self.dec_ln = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))

    def attend(self, a, x, kv, bias):
        b, s, h, dk = x.shape[0], x.shape[1], self.c["num_heads"], self.c["d_kv"]
        q = a.q(x).view(b, s, h, dk).transpose(1, 2)
        k, v = (t(kv).view(b, kv.shape[1], h, dk).transpose(1, 2) for t in (a.k, a.v))
        scores = q @ k.transpose(-1, -2)   # T5: no 1/sqrt(d) (absorbed by its initialization)
        if bias is not None:
            scores = scores + bias
        probs = F.dropout(scores.softmax(-1), self.c["dropout_rate"], self.training)
        return a.o((probs @ v).transpose(1, 2).reshape(b, s, h * dk))

    def position_bias(self, table, q, k, bidirectional):
        rel = torch.arange(k)[None, :] - torch.arange(q)[:, None]
        buckets = bucket(rel, bidirectional, self.c["relative_attention_num_buckets"], self.c["relative_attention_max_distance"])
        return table(buckets).permute(2, 0, 1)[None]

    def forward(self, ids, labels):
        c, eps, p = self.c, self.c["layer_norm_epsilon"], self.c["dropout_rate"]
        drop = lambda t: F.dropout(t, p, self.training)
        x = drop(self.shared(ids))
        bias = self.position_bias(self.enc_bias, ids.shape[1], ids.shape[1], True)
        for blk in self.encoder:
            x = x + drop(self.attend(blk.self_attn, rms(x, blk.ln1, eps), rms(x, blk.ln1, eps), bias))
            x = x + drop(blk.wo(drop(F.relu(blk.wi(rms(x, blk.ln2, eps))))))
        enc = drop(rms(x, self.enc_ln, eps))
        start = torch.full_like(labels[:, :1], c["decoder_start_token_id"])
        dec_ids = torch.cat([start, labels[:, :-1]], 1).masked_fill(torch.cat([start, labels[:, :-1]], 1) == -100, c["pad_token_id"])
        y = drop(self.shared(dec_ids))
        s = dec_ids.shape[1]
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        dbias = self.position_bias(self.dec_bias, s, s, False).masked_fill(~causal, torch.finfo(y.dtype).min)
        for blk in self.decoder:
            y = y + drop(self.attend(blk.self_attn, rms(y, blk.ln1, eps), rms(y, blk.ln1, eps), dbias))
            y = y + drop(self.attend(blk.cross, rms(y, blk.ln_cross, eps), enc, None))
            y = y + drop(blk.wo(drop(F.relu(blk.wi(rms(y, blk.ln2, eps))))))
        y = drop(rms(y, self.dec_ln, eps)) * c["d_model"] ** -0.5
        logits = y @ self.shared.weight.T
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--config", required=True)
    a.add_argument("--batch", type=int, required=True)
    a.add_argument("--seq", type=int, required=True)
    a.add_argument("--steps", type=int, default=30)
    a.add_argument("--warmup", type=int, default=5)
    a.add_argument("--threads", type=int, default=2)
    args = a.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    c = json.load(open(args.config))
    model = {"gpt2": Gpt2, "bert": Bert, "t5": T5}[c["model_type"]](c)
    model.train()
    # HF's rule: no weight decay on biases and norm weights (here the names with "ln")
    no_decay = [p for n, p in model.named_parameters() if n.split(".")[-1] == "bias" or any("ln" in part for part in n.split(".")[-2:])]
    decay = [p for p in model.parameters() if all(p is not q for q in no_decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, c["vocab_size"], (args.batch, args.seq), generator=g)
    labels = torch.where(torch.rand(args.batch, args.seq, generator=g) < 0.15, ids, torch.full_like(ids, -100))
    predicted = {"gpt2": args.batch * (args.seq - 1), "bert": int((labels != -100).sum()), "t5": args.batch * args.seq}[c["model_type"]]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(ids) if c["model_type"] == "gpt2" else model(ids, labels if c["model_type"] == "bert" else ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"framework": f"PyTorch {torch.__version__}", "steps": args.steps, "seconds": seconds,
                      "step_ms": 1000 * seconds / args.steps,
                      "tokens_per_second": args.batch * args.seq * args.steps / seconds,
                      "predicted_tokens_per_second": predicted * args.steps / seconds,
                      "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib():
    """VmHWM of this process. (ru_maxrss would not do: Linux carries it over from the parent across fork+exec, so a
    child started by a bigger process reports the parent's peak.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


if __name__ == "__main__":
    main()
