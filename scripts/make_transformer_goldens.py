#!/usr/bin/env python3
"""Small random-init Hugging Face checkpoints of each supported architecture, and golden outputs.

Deterministic (fixed seeds). Needs torch (CPU), transformers, safetensors, tokenizers.
Run from the repository root:  python3 scripts/make_transformer_goldens.py

Writes under Tests/Fixtures/Checkpoints/<variant>/:
  config.json, model.safetensors (or shards + model.safetensors.index.json), tokenizer.json,
  generation_config.json, golden.json:
    {"prompts": [{"ids": [...], "logits": [[... vocab] per position], "greedy": [...]}]}
  logits are HF transformers' f32 outputs for every position of each prompt; greedy are the ids
  HF generate() picks with do_sample=False after the prompt (max_new_tokens 8, EOS disabled).

Variants:
  llama_gqa      Llama, 4 heads / 2 KV heads, untied embeddings, rope_theta 10000
  llama_tied     Llama (SmolLM-like), tied embeddings, Llama-3 rope_scaling, rope_theta 500000
  qwen2          Qwen2: q/k/v bias, tied embeddings
  gpt2           GPT-2: learned positions, LayerNorm, gelu_new, Conv1D weights
  llama_bf16_sharded  llama_gqa's weights in bf16, saved in two shards (the HF layout of big checkpoints)
  mistral_sliding  Mistral, sliding_window 4 on every layer (prompts and continuations are longer)
  qwen2_sliding    Qwen2 with use_sliding_window: layer 0 full attention, layers 1-2 a window of 5
  qwen3          Qwen3: per-head q/k RMSNorm, head_dim 32 (not hidden/heads), several EOS ids in
                 generation_config.json
  gemma2         Gemma 2: scaled embedding, (1+w) RMSNorm, pre/post feed-forward norms, GeGLU (tanh),
                 query_pre_attn_scalar, attention and final logit soft-capping, alternating windows
  gemma3_text    Gemma 3 (text): q/k norm, local/global RoPE bases, linear RoPE scaling on global
                 layers, layer_types pattern with a window of 4
  phi3           Phi-3: fused qkv_proj and gate_up_proj, partial_rotary_factor 0.75, sliding_window 6
  phi3_longrope  Phi-3 with LongRoPE (short/long factors, original_max_position_embeddings 8: the
                 prompts cross it, so HF switches to the long factors as it does past 4k tokens)

The new architectures' goldens use HF's eager attention, the plain reference (soft-capping is
applied there). Name variants on the command line to regenerate only those.
"""
import json
import os
import shutil

import torch
import sys

from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "Checkpoints")
TOKENIZER = os.path.join(ROOT, "examples", "models", "tiny", "tokenizer.json")
VOCAB = 420
PROMPTS = [
    [1, 44, 81, 77, 69, 83, 266, 93, 73],
    [1, 3, 171, 52, 72, 77, 80, 81],
    [5, 9, 100, 200, 300, 419, 0, 2, 17, 33, 65, 129],
]


def llama_config(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
                tie_word_embeddings=False, torch_dtype="float32")
    base.update(kw)
    return LlamaConfig(**base)


def variants():
    torch.manual_seed(0)
    yield "llama_gqa", LlamaForCausalLM(llama_config())
    torch.manual_seed(1)
    yield "llama_tied", LlamaForCausalLM(llama_config(
        tie_word_embeddings=True, rope_theta=500000.0, num_key_value_heads=1,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}))
    torch.manual_seed(2)
    yield "qwen2", Qwen2ForCausalLM(Qwen2Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
        rope_theta=1000000.0, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
        torch_dtype="float32"))
    torch.manual_seed(3)
    yield "gpt2", GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=2, n_head=4, bos_token_id=1,
        eos_token_id=2, torch_dtype="float32"))
    yield from new_architectures()


# Shapes shared by the architectures added for issue 18.
SMALL = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
             torch_dtype="float32")


def new_architectures():
    torch.manual_seed(4)
    yield "mistral_sliding", MistralForCausalLM(MistralConfig(
        **SMALL, num_hidden_layers=2, sliding_window=4, rope_theta=10000.0, tie_word_embeddings=False))
    torch.manual_seed(5)
    yield "qwen2_sliding", Qwen2ForCausalLM(Qwen2Config(
        **SMALL, num_hidden_layers=3, use_sliding_window=True, sliding_window=5, max_window_layers=1,
        rope_theta=1000000.0, tie_word_embeddings=True))
    torch.manual_seed(6)
    yield "qwen3", Qwen3ForCausalLM(Qwen3Config(
        **SMALL, num_hidden_layers=2, head_dim=32, rope_theta=1000000.0, tie_word_embeddings=True))
    torch.manual_seed(7)
    yield "gemma2", Gemma2ForCausalLM(Gemma2Config(
        **SMALL, num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=24, sliding_window=4,
        attn_logit_softcapping=5.0, final_logit_softcapping=3.0, pad_token_id=0))
    torch.manual_seed(8)
    yield "gemma3_text", Gemma3ForCausalLM(Gemma3TextConfig(
        **SMALL, num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=16, sliding_window=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}},
        pad_token_id=0))
    torch.manual_seed(9)
    yield "phi3", Phi3ForCausalLM(Phi3Config(
        **SMALL, num_hidden_layers=2, partial_rotary_factor=0.75, sliding_window=6, pad_token_id=0,
        original_max_position_embeddings=256))
    torch.manual_seed(10)
    head_pairs = 64 // 4 // 2
    yield "phi3_longrope", Phi3ForCausalLM(Phi3Config(
        **SMALL, num_hidden_layers=2, pad_token_id=0, original_max_position_embeddings=8,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                         "short_factor": [1.0 + 0.1 * i for i in range(head_pairs)],
                         "long_factor": [1.5 + 0.5 * i for i in range(head_pairs)]}))


NEW = {"mistral_sliding", "qwen2_sliding", "qwen3", "gemma2", "gemma3_text", "phi3", "phi3_longrope"}
# generation_config.json eos_token_id lists (as Llama-3-Instruct's): every id ends a reply.
EOS_LISTS = {"qwen3": [2, 7, 9]}


def randomize(model):
    # HF initialises norms to 1 and biases to 0; perturb every tensor so each one matters.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
            else:
                p.mul_(4.0)


def goldens(model):
    model.eval()
    model.generation_config.eos_token_id = None  # continuations of fixed length, whatever the EOS ids
    out = []
    with torch.no_grad():
        for ids in PROMPTS:
            x = torch.tensor([ids])
            logits = model(x).logits[0].float()
            gen = model.generate(x, max_new_tokens=8, do_sample=False, eos_token_id=None,
                                 pad_token_id=0, attention_mask=torch.ones_like(x))
            out.append({"ids": ids, "logits": [[float(v) for v in row] for row in logits],
                        "greedy": gen[0, len(ids):].tolist()})
    return {"prompts": out}


def save(name, model, dtype=torch.float32, shard=None):
    attention = {"attn_implementation": "eager"} if name in NEW else {}
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    model = model.to(dtype)
    kwargs = {"safe_serialization": True}
    if shard:
        kwargs["max_shard_size"] = shard
    if name in EOS_LISTS:
        model.generation_config.eos_token_id = EOS_LISTS[name]
    model.save_pretrained(d, **kwargs)
    shutil.copy(TOKENIZER, os.path.join(d, "tokenizer.json"))
    # Goldens from the checkpoint as HF loads it (f32 compute), so they hold exactly what was saved.
    reloaded = type(model).from_pretrained(d, dtype=torch.float32, **attention)
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(goldens(reloaded), f)
    print(name, sorted(os.listdir(d)))


def main():
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[1:])
    for name, model in variants():
        if only and name not in only:
            continue
        randomize(model)
        save(name, model)
        if name == "llama_gqa":
            # The same weights in bf16 and sharded; goldens from HF loading that checkpoint.
            save("llama_bf16_sharded", model, dtype=torch.bfloat16, shard="150KB")


if __name__ == "__main__":
    main()
