#!/usr/bin/env python3
"""A ~82M-parameter Llama-shaped random-init checkpoint for benchmarks (not committed: ~330 MB
in f32). hidden 768, 12 layers, 12 heads, 4 KV heads, intermediate 2048, vocab 4096.

  python3 scripts/make_bench_model.py OUT_DIR [--dtype float32|float16|bfloat16]

Also writes OUT_DIR/tokenizer.json (a byte-level BPE trained to 4096 tokens on generated text)
and OUT_DIR/bench.pbtxt (a copy of scripts/bench.pbtxt: graphs `cpu` and `blas`, the model alone on
each backend, `cpu_q8`/`blas_q8` and `cpu_q4`/`blas_q4` with Q8_0 and Q4_0 weights, and `upscale`, three copies composed as in
EFT up-scaling), for `eft bench`.
"""
import argparse
import os
import random
import shutil

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(getattr(torch, args.dtype))
    model.save_pretrained(args.out, safe_serialization=True)

    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    text = [" ".join(rng.choice(words) for _ in range(200)) for _ in range(300)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=4096, special_tokens=["<pad>", "<s>", "</s>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                      show_progress=False))
    tok.save(os.path.join(args.out, "tokenizer.json"))
    shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench.pbtxt"), os.path.join(args.out, "bench.pbtxt"))
    print("parameters:", sum(p.numel() for p in model.parameters()))




if __name__ == "__main__":
    main()
