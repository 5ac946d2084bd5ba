#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (Tests/Fuzz/Corpus/<target>/; scripts/fuzz.sh).

- checkpoint: tiny random Llama, Qwen2-style (attention bias) and GPT-2 checkpoints saved by
  transformers (f32, f16, bf16), and Mistral (sliding window), Qwen3, Gemma 2, Gemma 3 text and
  Phi-3 (LongRoPE) ones (f32), each as config.json + "\\n--safetensors--\\n" + model.safetensors;
- request: serialized eft.v1.GenerateRequest messages for examples/configs/upscale.pbtxt
  (needs examples/python-client/generate_stubs.py run first);
- tokenizer: a mode byte (0-4: text for one of the golden tokenizers; 0x80: a tokenizer.json)
  and its payload;
- config: configs with the mistakes users make (the example configs are a second seed directory).

Needs torch, transformers, protobuf (pip). Deterministic: seeded.
"""
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Tests", "Fuzz", "Corpus")


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def checkpoints():
    import torch
    from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config,
                              GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                              Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
    torch.manual_seed(0)
    models = {
        "llama": LlamaForCausalLM(LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=12, num_hidden_layers=1,
                                              num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)),
        "qwen2": Qwen2ForCausalLM(Qwen2Config(vocab_size=16, hidden_size=8, intermediate_size=12, num_hidden_layers=1,
                                              num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
                                              tie_word_embeddings=True)),
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=16, n_embd=8, n_layer=1, n_head=2, n_positions=32)),
    }
    tiny = dict(vocab_size=16, hidden_size=8, intermediate_size=12, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, max_position_embeddings=32)
    models.update({
        "mistral": MistralForCausalLM(MistralConfig(**tiny, sliding_window=3)),
        "qwen3": Qwen3ForCausalLM(Qwen3Config(**tiny, head_dim=8)),
        "gemma2": Gemma2ForCausalLM(Gemma2Config(**tiny, head_dim=4, sliding_window=3, pad_token_id=0)),
        "gemma3": Gemma3ForCausalLM(Gemma3TextConfig(**tiny, head_dim=4, sliding_window=3, pad_token_id=0,
                                                     layer_types=["sliding_attention", "full_attention"])),
        "phi3": Phi3ForCausalLM(Phi3Config(**tiny, pad_token_id=0, original_max_position_embeddings=4,
                                           rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                                            "short_factor": [1.0, 1.5], "long_factor": [2.0, 3.0]})),
    })
    for name, model in models.items():
        for dtype in (["float32", "float16", "bfloat16"] if name in ("llama", "qwen2", "gpt2") else ["float32"]):
            with tempfile.TemporaryDirectory() as d:
                model.to(getattr(torch, dtype)).save_pretrained(d, safe_serialization=True)
                config = open(os.path.join(d, "config.json"), "rb").read()
                weights = open(os.path.join(d, "model.safetensors"), "rb").read()
            write("checkpoint", f"{name}-{dtype}", config + b"\n--safetensors--\n" + weights)


def requests():
    sys.path.insert(0, os.path.join(ROOT, "examples", "python-client"))
    import generate_stubs
    sys.path.insert(0, generate_stubs.stubs_directory())
    from eft.v1 import runtime_pb2
    R = runtime_pb2.GenerateRequest
    seeds = {
        "plain": R(prompt="Where does Tomas live?"),
        "sampled": R(prompt="Tomas lives in", sampling=runtime_pb2.Sampling(temperature=0.8, top_k=5, top_p=0.9, seed=7, max_tokens=6)),
        "stops": R(prompt="Tomas", sampling=runtime_pb2.Sampling(stop=["a", " in", "\n"], stop_at_eos=False)),
        "tokens": R(prompt_tokens=[1, 2, 3, 4], graph="upscale"),
        "beta": R(prompt="Where?", parameters={"beta": 0.25}, return_node_log_probs=True),
        "min-p": R(prompt="x", sampling=runtime_pb2.Sampling(min_p=0.2, temperature=1.5, seed=1)),
        "speculative": R(prompt="Where does Tomas live?", speculation=runtime_pb2.SpeculationRequest(enabled=True, draft="ft", lookahead=3, adaptive=True)),
        "bad-graph": R(prompt="x", graph="nope"),
        "bad-top-p": R(prompt="x", sampling=runtime_pb2.Sampling(top_p=2.0)),
        "over-limit": R(prompt="x", sampling=runtime_pb2.Sampling(max_tokens=100)),
    }
    for name, message in seeds.items():
        write("request", name, message.SerializeToString())


def tokenizer_inputs():
    texts = ["Hello, world!", "  leading and trailing  ", "naïve café — 東京 🚀", "<|user|>\nhi\n<|assistant|>\n",
             "a" * 200, "\t\n\r\x00\x01", "don't we'll 123456 3.14"]
    for mode in range(5):
        for i, text in enumerate(texts):
            write("tokenizer", f"text-{mode}-{i}", bytes([mode]) + text.encode())
    tiny = open(os.path.join(ROOT, "examples", "models", "tiny", "tokenizer.json"), "rb").read()
    write("tokenizer", "json-tiny", b"\x80" + tiny)
    minimal = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
               "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}, "decoder": {"type": "ByteLevel"},
               "added_tokens": [{"id": 3, "content": "<s>", "special": True}]}
    write("tokenizer", "json-minimal", b"\x80" + json.dumps(minimal).encode())


def configs():
    head = 'plugins { name: "BigramBackend" }\n'
    node = lambda n, m: f'  nodes {{ name: "{n}" model {{ model: "{m}" }} }}\n'
    write("config", "cycle", head + 'graphs { name: "g"\n' + node("a", "small_base")
          + '  nodes { name: "b" linear { terms { input: "c" weight: 1 } } }\n'
          + '  nodes { name: "c" linear { terms { input: "b" weight: 1 } } }\n  output: "c"\n}\n')
    write("config", "unknown-model", head + 'graphs { name: "g"\n' + node("a", "nope") + '  output: "a"\n}\n')
    write("config", "weight-expression", head + 'graphs { name: "g"\n  parameters { name: "beta" default_value: 0.5 }\n'
          + node("a", "small_base") + node("b", "small_ft")
          + '  nodes { name: "c" linear { terms { input: "a" expr: "1 - beta" } terms { input: "b" expr: "beta * 2" } } }\n'
          + '  output: "c"\n}\n')
    write("config", "typo", head + 'graphs { name: "g"\n  nodez { name: "a" }\n}\n')


if __name__ == "__main__":
    tokenizer_inputs()
    configs()
    requests()
    checkpoints()
    print("wrote", CORPUS)
