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
import resource
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
        self.word, self.pos, self.type = (nn.Embedding(c["vocab_size"], d), nn.Embedding(c["max_position_embeddings"], d),
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
        x = self.word(ids) + self.pos(torch.arange(s)) + self.type(torch.zeros_like(ids))
        x = F.dropout(self.emb_ln(x), self.drop, self.training)
        for l in self.layers:
            q, k, v = (t(x).view(b, s, h, d // h).transpose(1, 2) for t in (l.q, l.k, l.v))
            probs = F.dropout(((q @ k.transpose(-1, -2)) / math.sqrt(d // h)).softmax(-1), self.attn_drop, self.training)
            x = l.ln1(x + F.dropout(l.o((probs @ v).transpose(1, 2).reshape(b, s, d)), self.drop, self.training))
            x = l.ln2(x + F.dropout(l.out(F.gelu(l.inter(x))), self.drop, self.training))
        logits = self.transform_ln(F.gelu(self.transform(x))) @ self.word.weight.T + self.bias
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
    model = {"gpt2": Gpt2, "bert": Bert}[c["model_type"]](c)
    model.train()
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "ln" in n.split(".")[-2:][0]]
    decay = [p for p in model.parameters() if all(p is not q for q in no_decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, c["vocab_size"], (args.batch, args.seq), generator=g)
    labels = torch.where(torch.rand(args.batch, args.seq, generator=g) < 0.15, ids, torch.full_like(ids, -100))
    predicted = args.batch * (args.seq - 1) if c["model_type"] == "gpt2" else int((labels != -100).sum())

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(ids) if c["model_type"] == "gpt2" else model(ids, labels)
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
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
