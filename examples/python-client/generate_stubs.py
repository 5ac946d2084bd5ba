#!/usr/bin/env python3
"""Generates the Python gRPC stubs of the EFTRuntime protocol from ../../proto with grpcio-tools,
outside the source tree: into $EFT_PYTHON_STUBS, else ~/.cache/eft/python-stubs (eft_client.py
reads them from there, and runs this itself when they are missing).

    python3 -m pip install -r requirements.txt
    python3 generate_stubs.py        # writes STUBS/eft/v1/runtime_pb2.py and runtime_pb2_grpc.py

(The health service, grpc.health.v1, is left out: its package would shadow grpcio's `grpc`;
Python's grpcio-health-checking ships those stubs.)
"""
import os
import sys

from grpc_tools import protoc
import grpc_tools

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
# runtime.proto imports config.proto (for `Sampling`).
FILES = ["eft/v1/runtime.proto", "eft/v1/config.proto"]


def stubs_directory() -> str:
    """Where the stubs go: $EFT_PYTHON_STUBS, else $XDG_CACHE_HOME/eft/python-stubs (~/.cache)."""
    if os.environ.get("EFT_PYTHON_STUBS"):
        return os.environ["EFT_PYTHON_STUBS"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "eft", "python-stubs")


def main() -> int:
    OUT = stubs_directory()
    os.makedirs(OUT, exist_ok=True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    status = protoc.main(["grpc_tools.protoc", f"-I{PROTO}", f"-I{well_known}",
                          f"--python_out={OUT}", f"--grpc_python_out={OUT}"] + FILES)
    if status != 0:
        print(f"generate_stubs: protoc failed with status {status}", file=sys.stderr)
        return status
    for folder in ["eft", "eft/v1"]:  # importable as the package eft.v1
        open(os.path.join(OUT, folder, "__init__.py"), "a").close()
    print(f"generate_stubs: wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
