"""llama.cpp as a benchmark peer: builds its tools and converts a checkpoint to GGUF. DIR is a
llama.cpp source tree, e.g. the `vendor/llama.cpp` of the llama-cpp-python sdist on PyPI:

  pip download --no-deps --no-binary :all: llama-cpp-python && tar xzf llama_cpp_python-*.tar.gz

The converter (DIR/convert_hf_to_gguf.py) needs torch, transformers and sentencepiece.
"""
import os
import subprocess
import sys

# convert_hf_to_gguf.py recognises a BPE pre-tokenizer by the hash of a test string's tokens;
# the bench checkpoint's byte-level BPE (GPT-2's pre-tokenizer) is not in its table, so name it.
# This is tokenizer metadata only: it changes neither the weights nor what is measured.
CONVERT = """
import runpy, sys
llama = sys.argv.pop(1)
sys.path.insert(0, llama)
from conversion import base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv[0] = llama + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def tool(llama_cpp, name):
    """DIR/build/bin/NAME, configured and built with cmake when missing."""
    src = os.path.abspath(llama_cpp)
    exe = os.path.join(src, "build", "bin", name)
    if not os.path.exists(exe):
        build = os.path.join(src, "build")
        subprocess.run(["cmake", "-B", build, "-S", src, "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
                        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF"], check=True)
        subprocess.run(["cmake", "--build", build, "--target", name, "-j", str(os.cpu_count())], check=True)
    return exe


def convert(llama_cpp, model, outtype):
    """MODEL/model-OUTTYPE.gguf, made when missing: f32, f16, bf16 and q8_0 by the converter; q4_0
    by llama-quantize from the f32 GGUF, --pure (every matrix Q4_0, the output head too, as eft's
    `weights: Q4_0` quantizes them; by default llama-quantize keeps the head at a finer type)."""
    path = os.path.join(model, f"model-{outtype}.gguf")
    if not os.path.exists(path) and outtype == "q4_0":
        f32 = convert(llama_cpp, model, "f32")
        subprocess.run([tool(llama_cpp, "llama-quantize"), "--pure", f32, path, "Q4_0"], check=True)
    elif not os.path.exists(path):
        src = os.path.abspath(llama_cpp)
        env = dict(os.environ, PYTHONPATH=os.path.join(src, "gguf-py"))
        subprocess.run([sys.executable, "-c", CONVERT, src, model, "--outtype", outtype, "--outfile", path], check=True, env=env)
    return path
