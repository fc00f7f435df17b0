#!/usr/bin/env python3
"""Writes a small Gemma 3 multimodal projector (mmproj) GGUF with seeded random weights.

It exists so that tests and CI run llama.cpp's real multimodal path (image -> image tokens -> decode ->
text) without a vision model download. Its output text is meaningless; only the path is real. The
geometry matches the Gemma 3 270M text model: projection_dim = 640 = the text model's n_embd.

usage: make_test_mmproj.py OUT.gguf [--image-size 224] [--patch-size 14]
Image tokens = (image_size / patch_size / 4)^2: 224/14 -> 16 tokens.
"""
import argparse

import gguf
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--patch-size", type=int, default=14)
    ap.add_argument("--embd", type=int, default=64, help="vision embedding length")
    ap.add_argument("--ffn", type=int, default=256, help="feed-forward length (must differ from --embd)")
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--text-embd", type=int, default=640, help="n_embd of the text model it feeds")
    ap.add_argument("--seed", type=int, default=20261123)
    a = ap.parse_args()
    assert a.ffn != a.embd, "clip.cpp swaps FFN weights when feed_forward_length == embedding_length"
    assert a.image_size % a.patch_size == 0

    rng = np.random.default_rng(a.seed)
    d, f, p, e = a.embd, a.ffn, a.patch_size, a.text_embd
    n = (a.image_size // a.patch_size) ** 2

    def w(*shape, scale=0.02):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ones(k):
        return np.ones((k,), dtype=np.float32)

    def zeros(k):
        return np.zeros((k,), dtype=np.float32)

    out = gguf.GGUFWriter(a.out, "clip")
    out.add_string("general.name", "crow-test-mmproj-gemma3")
    out.add_string("general.description", "Random-weight Gemma 3 projector for tests; output is meaningless")
    out.add_string("clip.projector_type", "gemma3")
    out.add_bool("clip.has_vision_encoder", True)
    out.add_bool("clip.use_gelu", True)
    out.add_uint32("clip.vision.image_size", a.image_size)
    out.add_uint32("clip.vision.patch_size", p)
    out.add_uint32("clip.vision.embedding_length", d)
    out.add_uint32("clip.vision.feed_forward_length", f)
    out.add_uint32("clip.vision.block_count", a.blocks)
    out.add_uint32("clip.vision.projection_dim", e)
    out.add_uint32("clip.vision.attention.head_count", a.heads)
    out.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    out.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    out.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    # numpy shapes are the reverse of ggml's dimension order.
    out.add_tensor("v.patch_embd.weight", w(d, 3, p, p))
    out.add_tensor("v.patch_embd.bias", zeros(d))
    out.add_tensor("v.position_embd.weight", w(n, d))
    for i in range(a.blocks):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            out.add_tensor(f"v.blk.{i}.{name}.weight", w(d, d))
            out.add_tensor(f"v.blk.{i}.{name}.bias", zeros(d))
        for name in ("ln1", "ln2"):
            out.add_tensor(f"v.blk.{i}.{name}.weight", ones(d))
            out.add_tensor(f"v.blk.{i}.{name}.bias", zeros(d))
        out.add_tensor(f"v.blk.{i}.ffn_up.weight", w(f, d))
        out.add_tensor(f"v.blk.{i}.ffn_up.bias", zeros(f))
        out.add_tensor(f"v.blk.{i}.ffn_down.weight", w(d, f))
        out.add_tensor(f"v.blk.{i}.ffn_down.bias", zeros(d))
    out.add_tensor("v.post_ln.weight", ones(d))
    out.add_tensor("v.post_ln.bias", zeros(d))
    out.add_tensor("mm.soft_emb_norm.weight", ones(d))
    out.add_tensor("mm.input_projection.weight", w(d, e))

    out.write_header_to_file()
    out.write_kv_data_to_file()
    out.write_tensors_to_file()
    out.close()


if __name__ == "__main__":
    main()
