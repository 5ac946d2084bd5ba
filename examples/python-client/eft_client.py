#!/usr/bin/env python3
"""A Python client of eft-server: streams a generation (with per-node values, a deadline, or
cancelled part-way), scores a continuation, lists graphs, checks health.

    python3 eft_client.py --connect unix:/tmp/eft.sock generate --prompt 'Where does Tomas live?'
    python3 eft_client.py --connect tcp:127.0.0.1:50051 generate --prompt '...' --temperature 1 --seed 7 -v
    python3 eft_client.py --connect unix:/tmp/eft.sock generate --prompt '...' --nodes       # node values per token
    python3 eft_client.py --connect unix:/tmp/eft.sock --timeout 0.5 generate --prompt '...'  # a deadline
    python3 eft_client.py --connect unix:/tmp/eft.sock generate --prompt '...' --cancel-after 3
    python3 eft_client.py --connect unix:/tmp/eft.sock score --prompt '...' --continuation '...'
    python3 eft_client.py --connect unix:/tmp/eft.sock graphs
    python3 eft_client.py --connect unix:/tmp/eft.sock health                                  # exit 0 when SERVING
    python3 eft_client.py --connect tcp:HOST:PORT --tls-ca ca.pem --token-file token generate --prompt '...'

`generate` prints the text as it streams (what `eft run` prints); `-v` adds the finish line. The
stubs are generated from proto/ on first use (generate_stubs.py), outside the source tree.
"""
import argparse
import collections
import os
import sys

import generate_stubs

sys.path.insert(0, generate_stubs.stubs_directory())
try:
    from eft.v1 import runtime_pb2, runtime_pb2_grpc
except ImportError:
    if generate_stubs.main() != 0:
        sys.exit("eft_client: could not generate the stubs (pip install -r requirements.txt?)")
    import importlib
    sys.path_importer_cache.pop(generate_stubs.stubs_directory(), None)  # it was missing a moment ago
    importlib.invalidate_caches()
    from eft.v1 import runtime_pb2, runtime_pb2_grpc
import grpc


def channel_target(endpoint: str) -> str:
    """eft-server's endpoint syntax (unix:PATH, tcp:HOST:PORT, tcp:PORT) as a gRPC target."""
    if endpoint.startswith("unix:"):
        return endpoint
    if endpoint.startswith("tcp:"):
        rest = endpoint[4:]
        return rest if ":" in rest else f"127.0.0.1:{rest}"
    raise SystemExit(f"eft_client: --connect {endpoint!r}: expected unix:PATH, tcp:HOST:PORT or tcp:PORT")


def open_channel(args):
    """A channel to --connect: TLS on TCP when --tls-ca is given, plaintext otherwise; the bearer
    token (--token-file, else $EFT_TOKEN) goes with every call."""
    target = channel_target(args.connect)
    token = os.environ.get("EFT_TOKEN")
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    if args.tls_ca and not target.startswith("unix:"):
        with open(args.tls_ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        if token:
            credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
        return grpc.secure_channel(target, credentials)
    channel = grpc.insecure_channel(target)
    if token:  # gRPC sends call credentials over TLS only: add the header by hand
        channel = grpc.intercept_channel(channel, BearerToken(token))
    return channel


class CallDetails(collections.namedtuple("CallDetails", ("method", "timeout", "metadata", "credentials",
                                                        "wait_for_ready", "compression")), grpc.ClientCallDetails):
    pass


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token):
        self.header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        return CallDetails(details.method, details.timeout, list(details.metadata or []) + [self.header],
                           details.credentials, details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


def parameters(assignments):
    values = {}
    for a in assignments:
        name, _, value = a.partition("=")
        try:
            values[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"eft_client: --set {a}: expected name=number, e.g. --set beta=0.5")
    return values


def generate(stub, args):
    request = runtime_pb2.GenerateRequest(graph=args.graph, prompt=args.prompt, parameters=parameters(args.set))
    if args.max_tokens is not None:
        request.sampling.max_tokens = args.max_tokens
    if args.seed is not None:
        request.sampling.seed = args.seed
    if args.temperature is not None:
        request.sampling.temperature = args.temperature
    request.sampling.stop.extend(args.stop)
    request.return_node_log_probs = args.nodes
    finish, start, tokens = None, None, 0
    call = stub.Generate(request, timeout=args.timeout)  # a deadline: DEADLINE_EXCEEDED when it passes
    for response in call:
        event = response.WhichOneof("event")
        if event == "start":
            start = response.start
        elif event == "token":
            token = response.token
            if args.nodes and token.id >= 0:
                # Each node's value at the token, in the order of start.node_names: a model node's
                # log-prob; an operator's value before the final renormalisation (may be > 0).
                values = "  ".join(f"{name} {value:.3f}" for name, value in zip(start.node_names, token.node_log_probs))
                print(f"{token.id:6d} {token.piece!r:>12}  log-prob {token.log_prob:.3f}  {values}", file=sys.stderr)
            sys.stdout.write(token.text)
            sys.stdout.flush()
            tokens += token.id >= 0
            if args.cancel_after is not None and tokens >= args.cancel_after:
                call.cancel()  # the server stops generating within a token and frees the call's slot
                sys.stdout.write("\n")
                print(f"eft_client: cancelled after {tokens} tokens", file=sys.stderr)
                return
        elif event == "finish":
            finish = response.finish
    sys.stdout.write("\n")
    if args.verbose and finish is not None:
        reason = runtime_pb2.FinishReason.Name(finish.reason).removeprefix("FINISH_REASON_").lower()
        sessions = ", ".join(f"{m} {n}" for m, n in zip(start.session_models, finish.prompt_tokens)) if start else ""
        print(f"eft: {finish.completion_tokens} tokens, finish {reason}, prompt tokens ({sessions}), "
              f"prefill {finish.prefill_seconds:.3f} s, "
              f"decode {finish.decode_seconds:.3f} s, {finish.stats.model_calls} model calls", file=sys.stderr)


def score(stub, args):
    response = stub.Score(runtime_pb2.ScoreRequest(graph=args.graph, prompt=args.prompt,
                                                   continuation=args.continuation, parameters=parameters(args.set)),
                          timeout=args.timeout)
    for token, log_prob, piece in zip(response.tokens, response.log_probs, response.pieces):
        print(f"{token:6d}  {log_prob:10.4f}  {piece!r}")
    print(f"total {response.total:.4f} over {len(response.tokens)} tokens")


def graphs(stub, args):
    response = stub.ListGraphs(runtime_pb2.ListGraphsRequest(), timeout=args.timeout)
    for g in response.graphs:
        default = " (default)" if g.name == response.default_graph else ""
        print(f"graph {g.name}{default}: {g.description}")
        for p in g.parameters:
            print(f"  parameter {p.name} = {p.default_value}")
        for n in g.nodes:
            print(f"  {n.name} = {n.operation}{'  ← output' if n.name == g.output_node else ''}")


def health(channel, args):
    """grpc.health.v1 through grpcio-health-checking's stubs (stubs generated from the repository's
    health.proto would shadow grpcio's `grpc` package)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=args.service),
                                                         timeout=args.timeout)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if status == "SERVING" else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connect", default="tcp:127.0.0.1:50051", help="unix:PATH, tcp:HOST:PORT or tcp:PORT")
    parser.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    parser.add_argument("--tls-ca", help="connect over TLS (TCP), trusting the certificates in this PEM file")
    parser.add_argument("--token-file", help="send the bearer token in this file (default: $EFT_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True)
    g = commands.add_parser("generate")
    g.add_argument("--prompt", required=True)
    g.add_argument("--graph", default="")
    g.add_argument("--max-tokens", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--temperature", type=float)
    g.add_argument("--stop", action="append", default=[])
    g.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    g.add_argument("-v", "--verbose", action="store_true")
    g.add_argument("--nodes", action="store_true", help="print every node's value at each token to stderr")
    g.add_argument("--cancel-after", type=int, metavar="N", help="cancel the call after N tokens")
    s = commands.add_parser("score")
    s.add_argument("--prompt", required=True)
    s.add_argument("--continuation", required=True)
    s.add_argument("--graph", default="")
    s.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    commands.add_parser("graphs")
    h = commands.add_parser("health")
    h.add_argument("--service", default="", help='"" (the server) or eft.v1.Runtime')
    args = parser.parse_args()

    with open_channel(args) as channel:
        stub = runtime_pb2_grpc.RuntimeStub(channel)
        try:
            if args.command == "health":
                return health(channel, args)
            {"generate": generate, "score": score, "graphs": graphs}[args.command](stub, args)
        except grpc.RpcError as error:
            print(f"eft_client: error: {error.details()} ({error.code().name})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
