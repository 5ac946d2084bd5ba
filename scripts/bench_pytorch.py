#!/usr/bin/env python3
"""PyTorch + transformers decode speed on a checkpoint, measured like `eft bench`: a prompt of
random ids, then greedy decoding with the KV cache; median of several runs. Prints JSON with
`prefill_tokens_per_s` and `decode_tokens_per_s`.

  python3 scripts/bench_pytorch.py MODEL_DIR [--threads 2] [--prompt-tokens 128] [--new-tokens 64] [--runs 3]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype="auto").eval()
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, model.config.vocab_size, (1, args.prompt_tokens), generator=g)
    prefill, decode = [], []
    with torch.inference_mode():
        for _ in range(args.runs):
            t0 = time.perf_counter()
            out = model(prompt, use_cache=True)
            t1 = time.perf_counter()
            past, logits = out.past_key_values, out.logits[:, -1]
            for _ in range(args.new_tokens):
                nxt = logits.argmax(-1, keepdim=True)
                out = model(nxt, past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[:, -1]
            t2 = time.perf_counter()
            prefill.append(t1 - t0)
            decode.append(t2 - t1)
    print(json.dumps({"peer": "pytorch", "threads": args.threads,
                      "prefill_tokens_per_s": args.prompt_tokens / statistics.median(prefill),
                      "decode_tokens_per_s": args.new_tokens / statistics.median(decode)}))


if __name__ == "__main__":
    main()
