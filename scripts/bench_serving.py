#!/usr/bin/env python3
"""Serving throughput under concurrent streams: eft-server, and optionally llama.cpp's server on
the same checkpoint, in one run on one machine, printed side by side.

  swift build -c release --product CPUBackend && swift build -c release --product eft-server
  python3 scripts/bench_serving.py [--dir /tmp/eft-bench] [--dtype bfloat16] [--graph cpu]
                                   [--concurrency 1,2,4,8] [--tokens 64] [--runs 3] [--threads 2]
                                   [--llama-cpp DIR]

The checkpoint is the ~82M-parameter Llama of scripts/make_bench_model.py (made when missing).
For each concurrency level N, N clients send the same greedy request at once (EOS ignored, a
connection each); a level's aggregate tokens/s is all tokens over the wall time from the first
request to the last token. eft-server's figures come from `eft-server bench --concurrency`; the
runs alternate between the two servers, and each level reports its median-aggregate run.

--llama-cpp DIR adds llama.cpp's server as the peer: DIR is a llama.cpp source tree (the
`vendor/llama.cpp` of the llama-cpp-python sdist on PyPI; scripts/llamacpp.py builds llama-server
with cmake when it is missing). The checkpoint is converted with DIR/convert_hf_to_gguf.py at the
same dtype, and llama-server runs with as many parallel slots as the
highest level (continuous batching), --threads threads, prompt caching off.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import llamacpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




def percentile(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    rank = max(0, min(len(s) - 1, int(-(-p * len(s) // 1)) - 1))
    return s[rank]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eft_levels(args, model):
    """One eft-server bench run over every level (its own process: load, warm-up, measure)."""
    cmd = [os.path.join(ROOT, ".build/release/eft-server"), "bench", os.path.join(model, "bench.pbtxt"), "--graph", args.graph,
           "--concurrency", args.concurrency, "--max-tokens", str(args.tokens), "--temperature", "0", "--runs", "1",
           "--prompt", args.prompt, "--json"]
    env = dict(os.environ, EFT_THREADS=str(args.threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not result["identical"]:
        sys.exit("eft-server bench: concurrent streams differ from the request alone")
    return {level["streams"]: level for level in result["levels"]}


def median_run(runs):
    """The run with the median aggregate tokens/s."""
    return sorted(runs, key=lambda r: r["aggregate_tokens_per_s"])[len(runs) // 2]


def llama_stream(port, prompt, tokens):
    """One streamed completion; returns (send time, [arrival times of tokens])."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.connect()
    body = json.dumps({"prompt": prompt, "n_predict": tokens, "temperature": 0, "ignore_eos": True, "stream": True,
                       "cache_prompt": False})
    sent = time.perf_counter()
    conn.request("POST", "/completion", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    arrivals = []
    for line in response:
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        event = json.loads(line[5:])
        if event.get("content") or event.get("tokens"):
            now = time.perf_counter()
            arrivals += [now] * max(1, len(event.get("tokens") or [0]))
        if event.get("stop"):
            break
    conn.close()
    return sent, arrivals


def llama_level(port, streams, prompt, tokens):
    results = [None] * streams
    barrier = threading.Barrier(streams)

    def client(i):
        barrier.wait()
        results[i] = llama_stream(port, prompt, tokens)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    start = min(r[0] for r in results)
    end = max(r[1][-1] for r in results if r[1])
    total = sum(len(r[1]) for r in results)
    gaps = [b - a for _, arr in results for a, b in zip(arr, arr[1:])]
    return {"streams": streams, "tokens": total, "seconds": end - start,
            "aggregate_tokens_per_s": total / (end - start),
            "per_stream_tokens_per_s": sum(len(a) / (a[-1] - s) for s, a in results if a) / streams,
            "between_tokens_p50_ms": percentile(gaps, 0.5) * 1e3, "between_tokens_p99_ms": percentile(gaps, 0.99) * 1e3,
            "first_token_p50_ms": percentile([a[0] - s for s, a in results if a], 0.5) * 1e3}


class LlamaServer:
    """llama.cpp's server on the converted checkpoint, with a slot per stream of the top level."""

    def __init__(self, args, model, slots):
        self.args = args
        gguf = llamacpp.convert(args.llama_cpp, model, {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}[args.dtype])
        self.port = free_port()
        self.process = subprocess.Popen([llamacpp.tool(args.llama_cpp, "llama-server"), "-m", gguf, "--host", "127.0.0.1",
                                         "--port", str(self.port), "-t", str(args.threads), "-tb", str(args.threads),
                                         "-np", str(slots), "-c", str(slots * 512), "--no-warmup"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        llama_level(self.port, slots, args.prompt, args.tokens)  # warm-up

    def levels(self, levels):
        return {n: llama_level(self.port, n, self.args.prompt, self.args.tokens) for n in levels}

    def close(self):
        self.process.terminate()
        self.process.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/eft-bench")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--graph", default="cpu", help="a graph of the bench config: cpu (one model) or upscale (three)")
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", default="The")
    ap.add_argument("--llama-cpp", help="a built llama.cpp source tree (optional peer)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    model = os.path.join(args.dir, args.dtype)
    if not os.path.exists(os.path.join(model, "bench.pbtxt")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make_bench_model.py"), model, "--dtype", args.dtype], check=True)

    # Interleaved runs (the machine is shared and noisy): eft, then the peer, per run.
    peer_server = LlamaServer(args, model, max(levels)) if args.llama_cpp else None
    eft_runs, peer_runs = [], []
    try:
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}: eft-server", file=sys.stderr)
            eft_runs.append(eft_levels(args, model))
            if peer_server:
                print(f"run {run + 1}/{args.runs}: llama.cpp", file=sys.stderr)
                peer_runs.append(peer_server.levels(levels))
    finally:
        if peer_server:
            peer_server.close()
    eft = {n: median_run([r[n] for r in eft_runs]) for n in levels}
    peer = {n: median_run([r[n] for r in peer_runs]) for n in levels} if peer_server else None
    if args.json:
        print(json.dumps({"dtype": args.dtype, "graph": args.graph, "threads": args.threads, "tokens_per_stream": args.tokens,
                          "eft": [eft[n] for n in levels], "llama_cpp": [peer[n] for n in levels] if peer else None}))
        return
    print(f"{args.dtype}, graph {args.graph}, {args.threads} threads, {args.tokens} greedy tokens per stream, "
          f"median-aggregate run of {args.runs}")
    header = f"{'streams':>7} {'eft tok/s':>10} {'×1 stream':>9} {'gap p50/p99 ms':>15}"
    if peer:
        header += f" {'llama.cpp tok/s':>16} {'×1 stream':>9} {'gap p50/p99 ms':>15} {'eft/llama':>9}"
    print(header)
    for n in levels:
        e = eft[n]
        row = (f"{n:7d} {e['aggregate_tokens_per_s']:10.1f} {e['aggregate_tokens_per_s'] / eft[levels[0]]['aggregate_tokens_per_s']:8.2f}× "
               f"{e['between_tokens_p50_ms']:7.1f}/{e['between_tokens_p99_ms']:<7.1f}")
        if peer:
            p = peer[n]
            row += (f" {p['aggregate_tokens_per_s']:16.1f} {p['aggregate_tokens_per_s'] / peer[levels[0]]['aggregate_tokens_per_s']:8.2f}× "
                    f"{p['between_tokens_p50_ms']:7.1f}/{p['between_tokens_p99_ms']:<7.1f} "
                    f"{e['aggregate_tokens_per_s'] / p['aggregate_tokens_per_s']:8.2f}×")
        print(row)


if __name__ == "__main__":
    main()
