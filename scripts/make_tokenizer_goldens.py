#!/usr/bin/env python3
"""Tokenizers in the styles of real checkpoints, and HF tokenizers' outputs as goldens.

Deterministic. Needs `pip install tokenizers`. Run from the repository root:
  python3 scripts/make_tokenizer_goldens.py

Writes Tests/EFTTokenizerTests/Goldens/<style>.tokenizer.json and <style>.json
({"text", "ids", "ids_plain", "decoded"} per text, as tiny.json):
  sentencepiece  Llama-2 / TinyLlama: normalizer Prepend("▁") + Replace(" ", "▁"), BPE with
                 byte_fallback and <0xXX> tokens, decoder Replace + ByteFallback + Fuse + Strip
  metaspace      newer Llama-2-style conversions: Metaspace pre-tokenizer and decoder, byte fallback
  gemma          Gemma 2/3 (transformers' GemmaTokenizer): normalizer Replace(" ", "▁") without a
                 prefix, a Split(" ", merged_with_previous) pre-tokenizer, BPE with byte fallback,
                 decoder Replace + ByteFallback + Fuse (no Strip), <pad> <eos> <bos> <unk> first
  (Phi-3 uses the Llama-2 tokenizer: sentencepiece; Qwen3 Qwen2's: qwen2)
  llama3         Llama-3: Split(regex, Isolated) + ByteLevel(use_regex=false), ignore_merges
  qwen2          Qwen2: NFC normalizer, Split(Qwen regex) + ByteLevel, ByteLevel decoder
"""
import json
import os
import random

from tokenizers import (Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "EFTTokenizerTests", "Goldens")
LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

rng = random.Random(7)
WORDS = ["the", "river", "market", "Oakridge", "lives", "works", "baker", "smith", "naïve", "café",
         "日本", "語", "Ελληνικά", "русский", "def", "return", "x", "42", "3.14", "2026", "don't",
         "we're", "emoji", "👋", "🌍", "\n", "\t", "  ", "HELLO", "World"]
CORPUS = [" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(400)]
TEXTS = [
    "Hello world",
    "Tomas lives in Oakridge.",
    "  leading spaces and   runs of    spaces  ",
    "tabs\tand\nnewlines\n\n\nand trailing\n",
    "Numbers: 3.14159, 2026-11-29, 1000000 and ٣٤٥",
    "def f(x):\n    return x ** 2  # square\n",
    "Unicode: naïve café, Ελληνικά, русский, 日本語のテキスト, 한국어",
    "Emoji: 👋🌍 family: 👨‍👩‍👧 flags: 🇳🇱",
    "Contractions: it's, we're, they've, I'm, you'll, he'd, don't, IT'S",
    "<s>special</s> inside",
    "",
    " ",
    "a\u00a0b\u2003c",
    "e\u0301 (decomposed é) and ﬁ ligature",
    "!!!???...,,,;;;",
]


def sentencepiece_style(metaspace, gemma=False):
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"] if gemma else ["<unk>", "<s>", "</s>"]
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    if gemma:
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    elif metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    # Rebuild the vocabulary as SentencePiece conversions lay it out: specials, 256 byte tokens, pieces.
    model = json.loads(tok.to_str())
    trained = sorted(model["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in trained:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    model["model"]["vocab"] = vocab
    model["added_tokens"] = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for i, s in enumerate(specials)]
    tok = Tokenizer.from_str(json.dumps(model))
    if gemma:
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
        return tok
    if metaspace:
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    else:
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def byte_level_style(pattern, nfc, ignore_merges):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    styles = {
        "sentencepiece": sentencepiece_style(metaspace=False),
        "metaspace": sentencepiece_style(metaspace=True),
        "gemma": sentencepiece_style(metaspace=False, gemma=True),
        "llama3": byte_level_style(LLAMA3_PATTERN, nfc=False, ignore_merges=True),
        "qwen2": byte_level_style(QWEN2_PATTERN, nfc=True, ignore_merges=False),
    }
    for name, tok in styles.items():
        tok.save(os.path.join(OUT, f"{name}.tokenizer.json"))
        goldens = []
        for t in TEXTS:
            plain = tok.encode(t, add_special_tokens=False).ids
            goldens.append({"text": t, "ids": tok.encode(t).ids, "ids_plain": plain,
                            "decoded": tok.decode(plain, skip_special_tokens=False)})
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(goldens, f, ensure_ascii=False, indent=1)
        print(name, tok.get_vocab_size())


if __name__ == "__main__":
    main()
