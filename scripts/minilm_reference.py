#!/usr/bin/env python3
"""A reference all-MiniLM-L6-v2 sentence embedder in numpy, independent of llama.cpp and of crow's GGUF
conversion: BERT's uncased WordPiece tokenizer, the 6-layer encoder read straight from model.safetensors,
mean pooling over the tokens, L2 normalisation (what sentence-transformers computes). crow's tests compare
its llama.cpp embeddings against this.

    python scripts/minilm_reference.py MODEL_DIR < sentences (one per line)  ->  JSON list of vectors
"""

import json
import sys
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from convert_minilm import read_safetensors  # noqa: E402


def basic_tokens(text: str) -> list[str]:
    """BERT's BasicTokenizer for an uncased model: clean, lowercase, strip accents, split punctuation
    (and CJK characters)."""
    out, word = [], []

    def flush():
        if word:
            out.append("".join(word))
            word.clear()

    text = unicodedata.normalize("NFD", text.lower())
    for ch in text:
        cp = ord(ch)
        cat = unicodedata.category(ch)
        if cp == 0 or cp == 0xFFFD or (cat.startswith("C") and ch not in "\t\n\r"):
            continue
        if cat == "Mn":
            continue
        if ch.isspace():
            flush()
        elif (
            (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126)
            or cat.startswith("P")
            or 0x4E00 <= cp <= 0x9FFF
        ):
            flush()
            out.append(ch)
        else:
            word.append(ch)
    flush()
    return out


def wordpiece(words: list[str], vocab: dict[str, int]) -> list[int]:
    ids = []
    for word in words:
        if len(word) > 100:
            ids.append(vocab["[UNK]"])
            continue
        start, pieces = 0, []
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    found = piece
                    break
                end -= 1
            if found is None:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[found])
            start = end
        ids.extend(pieces)
    return ids


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu(x):
    from math import erf, sqrt

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


def embed(ids: list[int], t: dict[str, np.ndarray], config: dict) -> np.ndarray:
    p = lambda name: t.get(name, t.get("bert." + name))  # noqa: E731
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    n = len(ids)
    x = p("embeddings.word_embeddings.weight")[ids]
    x = x + p("embeddings.position_embeddings.weight")[:n]
    x = x + p("embeddings.token_type_embeddings.weight")[0]
    x = layer_norm(x, p("embeddings.LayerNorm.weight"), p("embeddings.LayerNorm.bias"), eps)
    d = x.shape[1] // heads
    for i in range(config["num_hidden_layers"]):
        pre = f"encoder.layer.{i}."
        lin = lambda v, m: v @ p(pre + m + ".weight").T + p(pre + m + ".bias")  # noqa: E731
        q = lin(x, "attention.self.query").reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, d).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(1, 0, 2).reshape(n, heads * d)
        x = layer_norm(
            x + lin(ctx, "attention.output.dense"),
            p(pre + "attention.output.LayerNorm.weight"),
            p(pre + "attention.output.LayerNorm.bias"),
            eps,
        )
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(
            x + lin(h, "output.dense"),
            p(pre + "output.LayerNorm.weight"),
            p(pre + "output.LayerNorm.bias"),
            eps,
        )
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main() -> None:
    model_dir = Path(sys.argv[1])
    config = json.loads((model_dir / "config.json").read_text())
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    tensors = read_safetensors(model_dir / "model.safetensors")
    out = []
    for line in sys.stdin.read().splitlines():
        ids = [vocab["[CLS]"]] + wordpiece(basic_tokens(line), vocab)[:510] + [vocab["[SEP]"]]
        out.append([round(float(v), 6) for v in embed(ids, tensors, config)])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
