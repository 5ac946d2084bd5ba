#!/usr/bin/env python3
"""Decode and prefill speed of EFTRuntime's backends against PyTorch + transformers on the same
~82M-parameter Llama checkpoint, in one run on one machine, printed as ratios.

  swift build -c release
  python3 scripts/bench_compare.py [--dir /tmp/eft-bench] [--threads 2] [--dtype float32]

Makes the checkpoint with scripts/make_bench_model.py when it is missing.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/eft-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    model = os.path.join(args.dir, args.dtype)
    if not os.path.exists(os.path.join(model, "bench.pbtxt")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make_bench_model.py"), model, "--dtype", args.dtype], check=True)
    eft = os.path.join(ROOT, ".build/release/eft")
    common = ["--threads", str(args.threads), "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens), "--json"]
    rows = {}
    for graph in ["cpu", "blas"]:
        rows[f"eft {graph}"] = run_json([eft, "bench", os.path.join(model, "bench.pbtxt"), "--graph", graph] + common)
    rows["pytorch"] = run_json([sys.executable, os.path.join(ROOT, "scripts/bench_pytorch.py"), model, "--threads", str(args.threads),
                                "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens)])
    peer = rows["pytorch"]
    print(f"{args.dtype}, {args.threads} threads, {args.prompt_tokens}-token prompt, {args.new_tokens} new tokens")
    print(f"{'':12} {'prefill/s':>10} {'decode/s':>10} {'prefill ×torch':>15} {'decode ×torch':>14}")
    for name, r in rows.items():
        print(f"{name:12} {r['prefill_tokens_per_s']:10.1f} {r['decode_tokens_per_s']:10.1f} "
              f"{r['prefill_tokens_per_s'] / peer['prefill_tokens_per_s']:15.2f} {r['decode_tokens_per_s'] / peer['decode_tokens_per_s']:14.2f}")


if __name__ == "__main__":
    main()
