#!/usr/bin/env python3
"""Independent plain-PyTorch reference of the BERT, ALBERT and DistilBERT encoders and their masked-LM and
sequence-classification heads, written from the papers and Hugging Face's documented behaviour (not from the .NET
code, and without `transformers`, which Debian does not package). It writes the cross-framework fixtures under
tests/fixtures/models/<ClassName>/ that the .NET model tests load:

  config.json          HF keys for the tiny random configuration
  model.safetensors    seeded float32 weights under HF's state-dict names, tied copies left out (as HF saves them)
  io.safetensors       input_ids, attention_mask (with padding), token_type_ids, labels, and the expected
                       logits / last_hidden_state / loss computed in float64 (`*_f64`) and in float32 (`*_f32`)
                       from the same float32 weights

The forward passes are functions over a {HF name: tensor} dict, so nothing here shares structure with the .NET
modules except the names (which the .NET strict loader checks one by one).

Semantics reproduced (HF modeling_bert / modeling_albert / modeling_distilbert, current versions):
  * embeddings: word + absolute position (+ token type) -> LayerNorm -> dropout (off here: eval mode)
  * post-LN layers: LN(x + Attn(x)), then LN(h + FFN(h)); scores q.k^T / sqrt(head_dim); padded keys get zero weight
  * ALBERT: factorized embedding (embedding_size) mapped up by encoder.embedding_hidden_mapping_in; layer i runs group
    floor(i / (num_hidden_layers / num_hidden_groups)), each group runs its inner_group_num layers in turn;
    the MLM head's LayerNorm uses layer_norm_eps (older HF versions used torch's default 1e-5)
  * BERT/ALBERT pooler: tanh(dense(h[:, 0])); DistilBERT classifier: ReLU(pre_classifier(h[:, 0]))
  * MLM decoders are tied to the word embeddings, with their own bias
  * losses: cross-entropy ignoring label -100 (MLM); MSE when num_labels == 1, cross-entropy for integer labels,
    BCE-with-logits for float multi-label targets (sequence classification)

Usage:  /usr/bin/python3 tools/reference/models/encoders_reference.py [--out tests/fixtures/models]
"""

import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hf_folder import write_hf_folder, write_io  # noqa: E402
from safetensors_io import read_safetensors  # noqa: E402

# ----------------------------------------------------------------------------------------------- building blocks


def act(name):
    if name == "gelu":
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return lambda x: torch.clamp(x, min=0)
    raise ValueError(name)


def dense(x, W, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def norm(x, W, name, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * W[name + ".weight"] + W[name + ".bias"]


def self_attention(x, W, q, k, v, heads, mask):
    """Multi-head self-attention without the output projection; mask [b, s] (1 keep, 0 pad)."""
    b, s, width = x.shape
    d = width // heads

    def split(t):
        return t.reshape(b, s, heads, d).permute(0, 2, 1, 3)

    Q, K, V = split(dense(x, W, q)), split(dense(x, W, k)), split(dense(x, W, v))
    scores = Q @ K.transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return (probs @ V).permute(0, 2, 1, 3).reshape(b, s, width)


def embed(W, prefix, ids, token_types, eps):
    s = ids.shape[1]
    e = W[prefix + "word_embeddings.weight"][ids] + W[prefix + "position_embeddings.weight"][torch.arange(s)]
    if token_types is not None:
        e = e + W[prefix + "token_type_embeddings.weight"][token_types]
    return norm(e, W, prefix + "LayerNorm", eps)


# ----------------------------------------------------------------------------------------------- architectures


def bert_body(W, c, ids, mask, types, pool):
    eps = c["layer_norm_eps"]
    h = embed(W, "bert.embeddings.", ids, types, eps)
    for i in range(c["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        a = self_attention(h, W, p + "attention.self.query", p + "attention.self.key", p + "attention.self.value",
                           c["num_attention_heads"], mask)
        h = norm(h + dense(a, W, p + "attention.output.dense"), W, p + "attention.output.LayerNorm", eps)
        f = dense(act(c["hidden_act"])(dense(h, W, p + "intermediate.dense")), W, p + "output.dense")
        h = norm(h + f, W, p + "output.LayerNorm", eps)
    pooled = torch.tanh(dense(h[:, 0], W, "bert.pooler.dense")) if pool else None
    return h, pooled


def albert_body(W, c, ids, mask, types, pool):
    eps = c["layer_norm_eps"]
    h = embed(W, "albert.embeddings.", ids, types, eps)
    h = dense(h, W, "albert.encoder.embedding_hidden_mapping_in")
    layers, groups = c["num_hidden_layers"], c["num_hidden_groups"]
    for i in range(layers):
        g = int(i / (layers / groups))
        for j in range(c["inner_group_num"]):
            p = f"albert.encoder.albert_layer_groups.{g}.albert_layers.{j}."
            a = self_attention(h, W, p + "attention.query", p + "attention.key", p + "attention.value",
                               c["num_attention_heads"], mask)
            h = norm(h + dense(a, W, p + "attention.dense"), W, p + "attention.LayerNorm", eps)
            f = dense(act(c["hidden_act"])(dense(h, W, p + "ffn")), W, p + "ffn_output")
            h = norm(f + h, W, p + "full_layer_layer_norm", eps)
    pooled = torch.tanh(dense(h[:, 0], W, "albert.pooler")) if pool else None
    return h, pooled


def distilbert_body(W, c, ids, mask):
    eps = 1e-12  # hard-coded in HF's DistilBERT
    h = embed(W, "distilbert.embeddings.", ids, None, eps)
    for i in range(c["n_layers"]):
        p = f"distilbert.transformer.layer.{i}."
        a = self_attention(h, W, p + "attention.q_lin", p + "attention.k_lin", p + "attention.v_lin", c["n_heads"], mask)
        h = norm(dense(a, W, p + "attention.out_lin") + h, W, p + "sa_layer_norm", eps)
        f = dense(act(c["activation"])(dense(h, W, p + "ffn.lin1")), W, p + "ffn.lin2")
        h = norm(f + h, W, p + "output_layer_norm", eps)
    return h


def mlm_loss(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)


def classification_loss(logits, labels):
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
    if labels.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def forward(arch, W, c, ids, mask, types):
    """(logits, last_hidden_state) for the HF class `arch`."""
    if arch == "BertForMaskedLM":
        h, _ = bert_body(W, c, ids, mask, types, pool=False)
        t = norm(act(c["hidden_act"])(dense(h, W, "cls.predictions.transform.dense")), W,
                 "cls.predictions.transform.LayerNorm", c["layer_norm_eps"])
        return t @ W["bert.embeddings.word_embeddings.weight"].T + W["cls.predictions.bias"], h
    if arch == "BertForSequenceClassification":
        h, pooled = bert_body(W, c, ids, mask, types, pool=True)
        return dense(pooled, W, "classifier"), h
    if arch == "AlbertForMaskedLM":
        h, _ = albert_body(W, c, ids, mask, types, pool=False)
        t = norm(act(c["hidden_act"])(dense(h, W, "predictions.dense")), W, "predictions.LayerNorm", c["layer_norm_eps"])
        return t @ W["albert.embeddings.word_embeddings.weight"].T + W["predictions.bias"], h
    if arch == "AlbertForSequenceClassification":
        h, pooled = albert_body(W, c, ids, mask, types, pool=True)
        return dense(pooled, W, "classifier"), h
    if arch == "DistilBertForMaskedLM":
        h = distilbert_body(W, c, ids, mask)
        t = norm(act(c["activation"])(dense(h, W, "vocab_transform")), W, "vocab_layer_norm", 1e-12)
        return t @ W["distilbert.embeddings.word_embeddings.weight"].T + W["vocab_projector.bias"], h
    if arch == "DistilBertForSequenceClassification":
        h = distilbert_body(W, c, ids, mask)
        pooled = torch.clamp(dense(h[:, 0], W, "pre_classifier"), min=0)
        return dense(pooled, W, "classifier"), h
    raise ValueError(arch)


# ----------------------------------------------------------------------------------------------- parameters


def lin(name, n_out, n_in):
    return [(name + ".weight", (n_out, n_in), "linear"), (name + ".bias", (n_out,), "bias")]


def ln(name, n):
    return [(name + ".weight", (n,), "ln_weight"), (name + ".bias", (n,), "bias")]


def embeddings(prefix, c, width, types=True):
    p = [(prefix + "word_embeddings.weight", (c["vocab_size"], width), "embedding"),
         (prefix + "position_embeddings.weight", (c["max_position_embeddings"], width), "embedding")]
    if types:
        p.append((prefix + "token_type_embeddings.weight", (c["type_vocab_size"], width), "embedding"))
    return p + ln(prefix + "LayerNorm", width)


def parameters(arch, c):
    """HF state-dict names and shapes of `arch`, tied copies left out, in HF's module order."""
    n_labels = len(c["id2label"])
    if arch.startswith("Bert"):
        H, I = c["hidden_size"], c["intermediate_size"]
        p = embeddings("bert.embeddings.", c, H)
        for i in range(c["num_hidden_layers"]):
            q = f"bert.encoder.layer.{i}."
            p += lin(q + "attention.self.query", H, H) + lin(q + "attention.self.key", H, H)
            p += lin(q + "attention.self.value", H, H)
            p += lin(q + "attention.output.dense", H, H) + ln(q + "attention.output.LayerNorm", H)
            p += lin(q + "intermediate.dense", I, H) + lin(q + "output.dense", H, I) + ln(q + "output.LayerNorm", H)
        if arch == "BertForMaskedLM":
            p += [("cls.predictions.bias", (c["vocab_size"],), "bias")]
            p += lin("cls.predictions.transform.dense", H, H) + ln("cls.predictions.transform.LayerNorm", H)
        else:
            p += lin("bert.pooler.dense", H, H) + lin("classifier", n_labels, H)
        return p
    if arch.startswith("Albert"):
        H, E, I = c["hidden_size"], c["embedding_size"], c["intermediate_size"]
        p = embeddings("albert.embeddings.", c, E) + lin("albert.encoder.embedding_hidden_mapping_in", H, E)
        for g in range(c["num_hidden_groups"]):
            for j in range(c["inner_group_num"]):
                q = f"albert.encoder.albert_layer_groups.{g}.albert_layers.{j}."
                p += ln(q + "full_layer_layer_norm", H)
                for part in ("query", "key", "value", "dense"):
                    p += lin(q + "attention." + part, H, H)
                p += ln(q + "attention.LayerNorm", H) + lin(q + "ffn", I, H) + lin(q + "ffn_output", H, I)
        if arch == "AlbertForMaskedLM":
            p += ln("predictions.LayerNorm", E) + [("predictions.bias", (c["vocab_size"],), "bias")]
            p += lin("predictions.dense", E, H)
        else:
            p += lin("albert.pooler", H, H) + lin("classifier", n_labels, H)
        return p
    D, Hd = c["dim"], c["hidden_dim"]
    p = embeddings("distilbert.embeddings.", c, D, types=False)
    for i in range(c["n_layers"]):
        q = f"distilbert.transformer.layer.{i}."
        for part in ("q_lin", "k_lin", "v_lin", "out_lin"):
            p += lin(q + "attention." + part, D, D)
        p += ln(q + "sa_layer_norm", D) + lin(q + "ffn.lin1", Hd, D) + lin(q + "ffn.lin2", D, Hd)
        p += ln(q + "output_layer_norm", D)
    if arch == "DistilBertForMaskedLM":
        p += lin("vocab_transform", D, D) + ln("vocab_layer_norm", D) + [("vocab_projector.bias", (c["vocab_size"],), "bias")]
    else:
        p += lin("pre_classifier", D, D) + lin("classifier", n_labels, D)
    return p


def random_weights(arch, c, seed):
    """Seeded float32 weights, larger than HF's init so that attention patterns, activations and LayerNorm affine
    parameters all matter (an HF-initialized tiny model is nearly linear and would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    W = {}
    for name, shape, kind in parameters(arch, c):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        if kind == "linear":
            x = x / math.sqrt(shape[1])
        elif kind == "ln_weight":
            x = 1.0 + 0.2 * x
        elif kind == "bias":
            x = 0.2 * x
        W[name] = x.float()
    return W


# ----------------------------------------------------------------------------------------------- fixtures


def labels_of(n):
    return {str(i): f"LABEL_{i}" for i in range(n)}


BERT = dict(model_type="bert", vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
            max_position_embeddings=40, type_vocab_size=2, layer_norm_eps=1e-12, initializer_range=0.02,
            pad_token_id=0, position_embedding_type="absolute", classifier_dropout=None)
ALBERT = dict(model_type="albert", vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=3,
              num_hidden_groups=1, inner_group_num=2, num_attention_heads=4, intermediate_size=64,
              hidden_act="gelu_new", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
              max_position_embeddings=40, type_vocab_size=2, layer_norm_eps=1e-12, initializer_range=0.02,
              classifier_dropout_prob=0.1, pad_token_id=0, bos_token_id=2, eos_token_id=3,
              position_embedding_type="absolute")
DISTILBERT = dict(model_type="distilbert", vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                  activation="gelu", dropout=0.1, attention_dropout=0.1, seq_classif_dropout=0.2, qa_dropout=0.1,
                  max_position_embeddings=40, initializer_range=0.02, sinusoidal_pos_embds=False, pad_token_id=0)

CASES = [
    # folder, class, config, seed
    ("BertForMaskedLM", "BertForMaskedLM", dict(BERT, id2label=labels_of(2)), 11),
    ("BertForSequenceClassification", "BertForSequenceClassification",
     dict(BERT, hidden_act="gelu_new", classifier_dropout=0.2,
          id2label={"0": "negative", "1": "neutral", "2": "positive"}), 12),
    ("BertForSequenceClassification-regression", "BertForSequenceClassification",
     dict(BERT, hidden_act="relu", id2label=labels_of(1)), 13),
    ("AlbertForMaskedLM", "AlbertForMaskedLM", dict(ALBERT, id2label=labels_of(2)), 21),
    ("AlbertForSequenceClassification", "AlbertForSequenceClassification",
     dict(ALBERT, num_hidden_layers=4, num_hidden_groups=2, inner_group_num=1, hidden_act="gelu",
          id2label=labels_of(2)), 22),
    ("DistilBertForMaskedLM", "DistilBertForMaskedLM", dict(DISTILBERT, id2label=labels_of(2)), 31),
    ("DistilBertForSequenceClassification", "DistilBertForSequenceClassification",
     dict(DISTILBERT, activation="relu", id2label=labels_of(2)), 32),
]

BATCH, SEQ = 3, 7
LENGTHS = [7, 5, 3]  # rows 1 and 2 end in padding


def inputs(arch, c, seed):
    g = torch.Generator().manual_seed(seed + 1000)
    ids = torch.randint(1, c["vocab_size"], (BATCH, SEQ), generator=g)
    mask = torch.zeros(BATCH, SEQ, dtype=torch.int64)
    types = torch.zeros(BATCH, SEQ, dtype=torch.int64)
    for r, n in enumerate(LENGTHS):
        mask[r, :n] = 1
        types[r, n // 2:n] = 1              # sentence B in the second half
        ids[r, n:] = c["pad_token_id"]
    io = {"input_ids": ids, "attention_mask": mask}
    if not arch.startswith("DistilBert"):
        io["token_type_ids"] = types
    n_labels = len(c["id2label"])
    if arch.endswith("MaskedLM"):
        labels = torch.full((BATCH, SEQ), -100, dtype=torch.int64)
        chosen = (torch.rand(BATCH, SEQ, generator=g) < 0.4) & (mask == 1)
        chosen[0, 1] = True
        labels[chosen] = torch.randint(0, c["vocab_size"], (int(chosen.sum()),), generator=g)
        io["labels"] = labels
    elif n_labels == 1:
        io["labels"] = torch.randn(BATCH, generator=g, dtype=torch.float64).float()
    else:
        io["labels"] = torch.tensor([2 % n_labels, 0, 1])
        if n_labels > 2:   # multi-label targets for the BCE branch (float labels)
            io["multi_labels"] = (torch.rand(BATCH, n_labels, generator=g) < 0.5).float()
    return io


def expected(arch, c, W, io, dtype):
    Wd = {k: v.to(dtype) for k, v in W.items()}
    logits, hidden = forward(arch, Wd, c, io["input_ids"], io["attention_mask"], io.get("token_type_ids"))
    labels = io["labels"]
    loss = mlm_loss(logits, labels) if arch.endswith("MaskedLM") else classification_loss(logits, labels)
    out = {"logits": logits, "last_hidden_state": hidden, "loss": loss}
    if "multi_labels" in io:
        out["loss_multi_label"] = classification_loss(logits, io["multi_labels"])
    return out


def write_case(out_dir, folder, arch, c, seed):
    path = os.path.join(out_dir, folder)
    config = dict(c, architectures=[arch])
    config["label2id"] = {v: int(k) for k, v in c["id2label"].items()}
    W = random_weights(arch, c, seed)
    write_hf_folder(path, config, W)
    io = inputs(arch, c, seed)
    tensors = dict(io)
    for dtype, suffix in ((torch.float64, "_f64"), (torch.float32, "_f32")):
        for k, v in expected(arch, c, W, io, dtype).items():
            tensors[k + suffix] = v
    write_io(os.path.join(path, "io.safetensors"), tensors,
             {"generator": "tools/reference/models/encoders_reference.py", "class": arch, "seed": seed,
              "torch": torch.__version__})
    return path, W, io


def self_check(path, arch, c, W, io):
    """The files read back to the same weights and outputs; float32 agrees with float64; padding is inert."""
    stored, _ = read_safetensors(os.path.join(path, "model.safetensors"))
    assert set(stored) == set(W), f"{arch}: names differ"
    for k, v in W.items():
        assert np.array_equal(stored[k], v.numpy()), k
    e64 = expected(arch, c, W, io, torch.float64)
    e32 = expected(arch, c, W, io, torch.float32)
    for k in e64:
        rel = float((e32[k].double() - e64[k]).norm() / e64[k].norm())
        assert rel < 1e-5, f"{arch} {k}: float32 vs float64 relative error {rel}"
    # a padded row equals the same tokens run alone (row 2 has LENGTHS[2] real tokens)
    n = LENGTHS[2]
    alone = {k: v[2:3, :n] for k, v in io.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    _, h_alone = forward(arch, {k: v.double() for k, v in W.items()}, c, alone["input_ids"], alone["attention_mask"],
                         alone.get("token_type_ids"))
    assert torch.allclose(h_alone[0], e64["last_hidden_state"][2, :n], rtol=0, atol=1e-12), f"{arch}: padding leaks"
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    assert size < 150_000, f"{arch}: fixture folder is {size} bytes"
    return size, float(e64["loss"])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.normpath(os.path.join(here, "..", "..", "..", "tests", "fixtures", "models"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=default)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for folder, arch, c, seed in CASES:
        path, W, io = write_case(args.out, folder, arch, c, seed)
        size, loss = self_check(path, arch, c, W, io)
        print(f"{folder}: {len(W)} tensors, {size} bytes, loss {loss:.6f}")


if __name__ == "__main__":
    main()
