#!/usr/bin/env python3
"""A composition across machines, checked and measured: a graph whose large base lives in another
eft-server (the RemoteBackend plugin), against the same graph all local.

  python3 scripts/remote_split.py check [--build debug]
      CI: the facts `upscaled` graph with its large base remote, in three placements — a Unix
      socket, a server in a network namespace of its own joined by a veth pair, and that with
      10 ms of added round-trip time — must give the all-local tokens (greedy and seeded, plain
      and speculative), and fail cleanly (UNAVAILABLE naming the model and endpoint) once the
      remote is gone.
  python3 scripts/remote_split.py bench [--runs 5] [--bench-dir /tmp/eft-bench/float32]
      tokens/s split vs local for the facts `upscaled` graph and the ~82M bench model's `upscale`
      graph (scripts/make_bench_model.py; made when missing), at 0, 1 and 10 ms of added
      round-trip time, and the bytes on the wire per generated token.

Build first: `swift build -c release --product X` for X in eft, eft-server, CPUBackend,
RemoteBackend (or --build debug after `swift build --build-tests`).

The remote server runs in a network namespace (root and iproute2 needed; without them it listens
on loopback and the namespace placements are skipped, saying so). Round-trip time is added by a
delaying TCP proxy on this side that holds every chunk RTT/2 in each direction: the usual tool,
the kernel's netem qdisc, is missing from these machines' kernels (`tc qdisc add dev lo root
netem delay 1ms` answers "Specified qdisc kind is unknown"). Bytes on the wire are the veth's
counters (IP, TCP, HTTP/2 and gRPC framing included) over one generation, divided by its tokens.
"""
import argparse
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACTS = os.path.join(ROOT, "examples/models/facts")


def binary(args, name):
    return os.path.join(ROOT, ".build", args.build, name)


# ---- the remote server, in a network namespace when we may make one ----

class Namespace:
    """A network namespace joined to this one by a veth pair: 10.213.N.1 here, 10.213.N.2 there."""

    def __init__(self):
        n = os.getpid() % 200 + 20
        self.name = f"eft-remote-{os.getpid()}"
        self.here, self.there = f"eftv{os.getpid() % 100000}a", f"eftv{os.getpid() % 100000}b"
        self.local_ip, self.remote_ip = f"10.213.{n}.1", f"10.213.{n}.2"
        run = lambda *cmd: subprocess.run(cmd, check=True)
        run("ip", "netns", "add", self.name)
        try:
            run("ip", "link", "add", self.here, "type", "veth", "peer", "name", self.there)
            run("ip", "link", "set", self.there, "netns", self.name)
            run("ip", "addr", "add", f"{self.local_ip}/24", "dev", self.here)
            run("ip", "link", "set", self.here, "up")
            inside = ["ip", "netns", "exec", self.name]
            run(*inside, "ip", "addr", "add", f"{self.remote_ip}/24", "dev", self.there)
            run(*inside, "ip", "link", "set", self.there, "up")
            run(*inside, "ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def wire_bytes(self):
        """Bytes through the veth, both directions."""
        total = 0
        for d in ("rx_bytes", "tx_bytes"):
            with open(f"/sys/class/net/{self.here}/statistics/{d}") as f:
                total += int(f.read())
        return total

    def close(self):
        subprocess.run(["ip", "link", "del", self.here], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)


def can_make_namespaces():
    """Root, iproute2, and a kernel that lets us (tried: a namespace made and deleted)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"eft-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], stderr=subprocess.DEVNULL).returncode != 0:
        return False
    subprocess.run(["ip", "netns", "del", probe], stderr=subprocess.DEVNULL)
    return True


class Server:
    """eft-server on `config`, listening on `endpoint` (in `namespace` when given)."""

    def __init__(self, args, config, endpoint, namespace=None):
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        cmd = (namespace.prefix() if namespace else []) + [binary(args, "eft-server"), config, "--listen", endpoint]
        self.process = subprocess.Popen(cmd, stderr=self.log, stdout=subprocess.DEVNULL)
        deadline = time.time() + 120
        while "listening on" not in open(self.log.name).read():
            if self.process.poll() is not None or time.time() > deadline:
                sys.exit(f"eft-server did not start:\n{open(self.log.name).read()}")
            time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


# ---- a TCP proxy that adds latency ----

class DelayProxy:
    """Forwards 127.0.0.1:port to (host, port), holding each chunk `one_way` seconds per direction
    (order kept): `2 × one_way` of added round-trip time. Threads and time.sleep rather than
    asyncio, whose timers round up to epoll's whole milliseconds."""

    def __init__(self, target_host, target_port, one_way):
        self.target = (target_host, target_port)
        self.one_way = one_way
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pipe(client, server)
            self._pipe(server, client)

    def _pipe(self, source, sink):
        chunks = queue.Queue()

        def read():
            while True:
                try:
                    data = source.recv(1 << 16)
                except OSError:
                    data = b""
                chunks.put((time.perf_counter() + self.one_way, data))
                if not data:
                    return

        def write():
            while True:
                due, data = chunks.get()
                if not data:
                    try:
                        sink.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                try:
                    sink.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def close(self):
        self.listener.close()


# ---- configs ----

def plugins(args):
    return f"""
plugins {{ name: "CPUBackend"  path: "{binary(args, 'libCPUBackend.so')}" }}
plugins {{ name: "RemoteBackend"  path: "{binary(args, 'libRemoteBackend.so')}" }}
"""


def remote(name, endpoint, tokenizer, model, timeout):
    return f"""
models {{
  name: "{name}"  plugin: "RemoteBackend"  path: "{endpoint}"  tokenizer: "{tokenizer}"
  options {{ [type.googleapis.com/eft.v1.RemoteOptions] {{ model: "{model}"  timeout_seconds: {timeout} }} }}
}}
"""


def facts(args, endpoint=None):
    """The facts `upscaled` graph; its large base remote at `endpoint` (None: local)."""
    large = (remote("large_base", endpoint, f"{FACTS}/large_base/tokenizer.json", "large_base", 20) if endpoint
             else f'models {{ name: "large_base"  plugin: "CPUBackend"  path: "{FACTS}/large_base" }}')
    return plugins(args) + f"""
models {{ name: "small_base"  plugin: "CPUBackend"  path: "{FACTS}/small_base" }}
models {{ name: "small_ft"    plugin: "CPUBackend"  path: "{FACTS}/small_ft" }}
{large}
graphs {{
  name: "upscaled"
  parameters {{ name: "beta"  default_value: 0.5 }}
  nodes {{ name: "large"  model {{ model: "large_base" }} }}
  nodes {{ name: "ft"     model {{ model: "small_ft" }} }}
  nodes {{ name: "base"   model {{ model: "small_base" }} }}
  nodes {{ name: "eft" linear {{ terms {{ input: "large" }} terms {{ input: "ft" expr: "beta" }} terms {{ input: "base" expr: "-beta" }} }} }}
  output: "eft"
  sampling {{ temperature: 0  max_tokens: 24 }}
  speculative {{ draft: "ft"  lookahead: 4 }}
}}
"""


def bench_model(args, model_dir, endpoint=None):
    """The ~82M bench model's `upscale` graph (three copies, as scripts/bench.pbtxt composes them);
    the large base remote at `endpoint` (None: local)."""
    large = (remote("cpu", endpoint, f"{model_dir}/tokenizer.json", "cpu", 60) if endpoint
             else f'models {{ name: "cpu"  plugin: "CPUBackend"  path: "{model_dir}" }}')
    return plugins(args) + f"""
models {{ name: "cpu_ft"    plugin: "CPUBackend"  path: "{model_dir}" }}
models {{ name: "cpu_base"  plugin: "CPUBackend"  path: "{model_dir}" }}
{large}
graphs {{
  name: "upscale"
  parameters {{ name: "beta" default_value: 1 }}
  nodes {{ name: "large" model {{ model: "cpu" }} }}
  nodes {{ name: "ft"    model {{ model: "cpu_ft" }} }}
  nodes {{ name: "base"  model {{ model: "cpu_base" }} }}
  nodes {{ name: "eft"   linear {{ terms {{ input: "large" }} terms {{ input: "ft" expr: "beta" }} terms {{ input: "base" expr: "-beta" }} }} }}
  output: "eft"
}}
"""


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- what is run ----

def prompts(n):
    with open(os.path.join(ROOT, "examples/facts/heldout.jsonl")) as f:
        return [json.loads(line)["prompt"] for line in f][:n]


def run_eft(args, config, prompt, extra=()):
    out = subprocess.run([binary(args, "eft"), "run", config, "--prompt", prompt, "-v", *extra],
                         capture_output=True, text=True)
    return out.returncode, out.stdout, out.stderr


def tokens_of(stderr):
    """The token count of `eft run -v`'s summary line."""
    for line in stderr.splitlines():
        if line.startswith("eft: ") and " tokens, finish " in line:
            return int(line.split()[1])
    return 0


def check(args):
    work = tempfile.mkdtemp(prefix="eft-split-")
    local = write(work, "local.pbtxt", facts(args))
    facts_config = os.path.join(ROOT, "examples/configs/facts.pbtxt")
    cases = [(p, extra) for p in prompts(4)
             for extra in ([], ["--speculative", "off"], ["--temperature", "0.8", "--seed", "7"],
                           ["--temperature", "0.8", "--seed", "7", "--speculative", "off"])]
    expected = {}
    for prompt, extra in cases:
        code, out, err = run_eft(args, local, prompt, extra)
        if code != 0:
            sys.exit(f"local run failed: {err}")
        expected[(prompt, tuple(extra))] = out

    placements = [("unix socket", None, 0.0)]
    if can_make_namespaces():
        placements += [("network namespace (veth)", "ns", 0.0), ("network namespace + 10 ms RTT", "ns", 0.010)]
    else:
        print("remote_split: no network namespaces here (needs root, iproute2 and a kernel that allows them): "
              "the namespace placements are skipped")
    for label, where, rtt in placements:
        namespace = Namespace() if where == "ns" else None
        proxy = None
        try:
            if namespace:
                server = Server(args, facts_config, f"tcp:{namespace.remote_ip}:50061", namespace)
                endpoint = f"tcp:{namespace.remote_ip}:50061"
                if rtt:
                    proxy = DelayProxy(namespace.remote_ip, 50061, rtt / 2)
                    endpoint = f"tcp:127.0.0.1:{proxy.port}"
            else:
                socket = os.path.join(work, "remote.sock")
                server = Server(args, facts_config, f"unix:{socket}")
                endpoint = f"unix:{socket}"
            split = write(work, "split.pbtxt", facts(args, endpoint))
            for (prompt, extra) in cases:
                code, out, err = run_eft(args, split, prompt, extra)
                if code != 0 or out != expected[(prompt, tuple(extra))]:
                    sys.exit(f"{label}: {extra}: split {out!r} (exit {code}: {err.strip()}) != local {expected[(prompt, tuple(extra))]!r}")
            print(f"remote_split: {label}: {len(cases)} generations equal the all-local ones")
            server.stop()
            code, out, err = run_eft(args, split, cases[0][0])
            if code == 0 or "UNAVAILABLE" not in err and "unavailable" not in err or "large_base" not in err:
                sys.exit(f"{label}: with the remote gone: exit {code}, {err.strip()!r}")
            print(f"remote_split: {label}: remote gone -> {err.strip().splitlines()[-1]}")
        finally:
            if proxy:
                proxy.close()
            if namespace:
                namespace.close()
    shutil.rmtree(work, ignore_errors=True)


def eft_bench(args, config, graph):
    out = subprocess.run([binary(args, "eft"), "bench", config, "--graph", graph, "--runs", "1", "--json"],
                         check=True, capture_output=True, text=True, env=dict(os.environ, EFT_THREADS=str(args.threads))).stdout
    return json.loads(out.strip().splitlines()[-1])["decode_tokens_per_s"]


def bench(args):
    if not can_make_namespaces():
        sys.exit("remote_split bench: needs root and iproute2 (a network namespace for the remote server)")
    model_dir = args.bench_dir
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make_bench_model.py"), model_dir], check=True)
    work = tempfile.mkdtemp(prefix="eft-split-bench-")
    rows = []
    for name, graph, config in [("facts upscaled", "upscaled", lambda e=None: facts(args, e)),
                                ("82M upscale", "upscale", lambda e=None: bench_model(args, model_dir, e))]:
        # The remote server serves the local config (the large base among its models).
        local = remote_config = write(work, "local.pbtxt", config())
        split_text = config
        namespace = Namespace()
        try:
            server = Server(args, remote_config, f"tcp:{namespace.remote_ip}:50061", namespace)
            # None: straight over the veth; 0: through the proxy without delay (its own cost).
            for rtt in [None, 0.0, 0.001, 0.010]:
                proxy = DelayProxy(namespace.remote_ip, 50061, rtt / 2) if rtt is not None else None
                endpoint = f"tcp:127.0.0.1:{proxy.port}" if proxy else f"tcp:{namespace.remote_ip}:50061"
                split = write(work, "split.pbtxt", split_text(endpoint))
                local_runs, split_runs = [], []
                for _ in range(args.runs):  # alternating, one run each
                    local_runs.append(eft_bench(args, local, graph))
                    split_runs.append(eft_bench(args, split, graph))
                # Decode bytes per token (plain decoding, EOS ignored): a 65-token generation less
                # a one-token one (same prompt and prefill), over the 64 tokens between them.
                measured = []
                for n in (1, 65):
                    before = namespace.wire_bytes()
                    code, out, err = run_eft(args, split, "The", ["--graph", graph, "--max-tokens", str(n), "--temperature", "0",
                                                                   "--speculative", "off", "--ignore-eos"])
                    measured.append((namespace.wire_bytes() - before, tokens_of(err)))
                tokens = measured[1][1] - measured[0][1]
                per_token = (measured[1][0] - measured[0][0]) / max(1, tokens)
                lm, sm = sorted(local_runs)[len(local_runs) // 2], sorted(split_runs)[len(split_runs) // 2]
                rows.append((name, rtt, lm, sm, per_token, tokens))
                how = "veth, no proxy" if rtt is None else f"proxy +{rtt * 1000:2.0f} ms RTT"
                print(f"{name:15s} {how:18s} local {lm:8.1f} tok/s  split {sm:8.1f} tok/s  "
                      f"ratio {sm / lm:5.2f}  wire {per_token / 1024:6.1f} KiB/token ({tokens} tokens)", flush=True)
                if proxy:
                    proxy.close()
            server.stop()
        finally:
            namespace.close()
    if args.json:
        print(json.dumps([dict(graph=r[0], added_rtt_ms=None if r[1] is None else r[1] * 1000, local_tokens_per_s=r[2], split_tokens_per_s=r[3],
                               ratio=r[3] / r[2], wire_bytes_per_token=r[4]) for r in rows]))
    shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["check", "bench"])
    ap.add_argument("--build", default="release", choices=["debug", "release"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench-dir", default="/tmp/eft-bench/float32")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    check(args) if args.mode == "check" else bench(args)


if __name__ == "__main__":
    main()
