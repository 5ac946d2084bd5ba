#!/usr/bin/env python3
"""Prefill and decode speed of EFTRuntime's transformer backends against a peer on the same
~82M-parameter Llama checkpoint, in one run on one machine, printed as ratios. The peer is
llama.cpp (its `llama-bench`, the checkpoint converted to GGUF by its `convert_hf_to_gguf.py`) or
PyTorch + transformers. Runs are interleaved (eft cpu, eft blas, peer, repeated) and each figure
is the median over the repetitions, so that a noisy neighbour hits both sides alike.

  swift build -c release
  pip download --no-deps --no-binary :all: llama-cpp-python && tar xzf llama_cpp_python-*.tar.gz
  python3 scripts/bench_compare.py --llama-cpp llama_cpp_python-*/vendor/llama.cpp \\
      [--weights f32,f16,bf16,q8_0,q4_0] [--threads 2] [--repeats 3] [--dir /tmp/eft-bench]
  python3 scripts/bench_compare.py --peer pytorch [--weights f32]

Makes the checkpoints with scripts/make_bench_model.py when they are missing, the GGUF files with
llama.cpp's converter (Q8_0 from the f32 checkpoint, as eft's Q8_0 rows quantize the f32 one at
load; Q4_0 by its llama-quantize --pure from the f32 GGUF: every matrix Q4_0, as eft's), and builds
llama-bench and llama-quantize with cmake when the llama.cpp directory has none (scripts/llamacpp.py). Measured as
`eft bench` measures: prefill of a prompt of --prompt-tokens random ids, then --new-tokens
decoded after it (llama-bench: pp at depth 0, tg at depth --prompt-tokens).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

import llamacpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Weight rows: the checkpoint dtype they start from, eft's graph suffix, llama.cpp's --outtype.
WEIGHTS = {
    "f32": ("float32", "", "f32"),
    "f16": ("float16", "", "f16"),
    "bf16": ("bfloat16", "", "bf16"),
    "q8_0": ("float32", "_q8", "q8_0"),
    "q4_0": ("float32", "_q4", "q4_0"),
}


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def checkpoint(args, dtype):
    model = os.path.join(args.dir, dtype)
    if not os.path.exists(os.path.join(model, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make_bench_model.py"), model, "--dtype", dtype], check=True)
    shutil.copy(os.path.join(ROOT, "scripts/bench.pbtxt"), os.path.join(model, "bench.pbtxt"))
    return model


def llama_run(args, exe, path):
    cmd = [exe, "-m", path, "-t", str(args.threads), "-p", str(args.prompt_tokens), "-n", "0", "-r", "1", "-o", "json"]
    pp = run_llama(cmd)
    cmd = [exe, "-m", path, "-t", str(args.threads), "-p", "0", "-n", str(args.new_tokens), "-d", str(args.prompt_tokens),
           "-r", "1", "-o", "json"]
    tg = run_llama(cmd)
    return {"prefill_tokens_per_s": pp, "decode_tokens_per_s": tg}


def run_llama(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["avg_ts"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", default="llama.cpp", choices=["llama.cpp", "pytorch"])
    ap.add_argument("--llama-cpp", help="llama.cpp source directory (the llama-cpp-python sdist's vendor/llama.cpp)")
    ap.add_argument("--dir", default="/tmp/eft-bench")
    ap.add_argument("--weights", default="f32,f16,bf16,q8_0,q4_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    if args.peer == "llama.cpp" and not args.llama_cpp:
        ap.error("--llama-cpp DIR is needed for the llama.cpp peer")
    weights = args.weights.split(",")
    for w in weights:
        if w not in WEIGHTS or (args.peer == "pytorch" and w in ["q8_0", "q4_0"]):
            ap.error(f"unknown weights {w!r} (choices: {', '.join(WEIGHTS)}; pytorch has no q8_0 or q4_0)")
    eft = os.path.join(ROOT, ".build/release/eft")
    exe = llamacpp.tool(args.llama_cpp, "llama-bench") if args.peer == "llama.cpp" else None
    common = ["--threads", str(args.threads), "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens),
              "--runs", "1", "--json"]
    print(f"{args.threads} threads, {args.prompt_tokens}-token prompt, then {args.new_tokens} tokens decoded; "
          f"median of {args.repeats} interleaved repetitions; peer {args.peer}")
    print(f"{'weights':8} {'peer prefill/s':>15} {'decode/s':>9} | {'eft cpu':>8} {'decode/s':>9} {'ratio':>11} | "
          f"{'eft blas':>8} {'decode/s':>9} {'ratio':>11}")
    for w in weights:
        dtype, suffix, outtype = WEIGHTS[w]
        model = checkpoint(args, dtype)
        peer_path = llamacpp.convert(args.llama_cpp, model, outtype) if exe else None
        samples = {"cpu": [], "blas": [], "peer": []}
        for _ in range(args.repeats):
            for graph in ["cpu", "blas"]:
                samples[graph].append(run_json([eft, "bench", os.path.join(model, "bench.pbtxt"), "--graph", graph + suffix] + common))
            if exe:
                samples["peer"].append(llama_run(args, exe, peer_path))
            else:
                samples["peer"].append(run_json([sys.executable, os.path.join(ROOT, "scripts/bench_pytorch.py"), model, "--threads",
                                                 str(args.threads), "--prompt-tokens", str(args.prompt_tokens),
                                                 "--new-tokens", str(args.new_tokens), "--runs", "1"]))

        def median(name, key):
            return statistics.median(s[key] for s in samples[name])

        peer = (median("peer", "prefill_tokens_per_s"), median("peer", "decode_tokens_per_s"))
        line = f"{w:8} {peer[0]:15.1f} {peer[1]:9.1f}"
        for graph in ["cpu", "blas"]:
            ours = (median(graph, "prefill_tokens_per_s"), median(graph, "decode_tokens_per_s"))
            line += f" | {ours[0]:8.1f} {ours[1]:9.1f} {ours[0] / peer[0]:5.2f}/{ours[1] / peer[1]:4.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
