#!/usr/bin/env python3
"""Makes the tiny bundled models of examples/models/tiny and the tokenizer goldens.

Deterministic (fixed seeds). Needs only `pip install tokenizers` (HF tokenizers). Writes:

  examples/models/tiny/tokenizer.json        a byte-level BPE tokenizer trained on the corpus
  examples/models/tiny/*.bigram              bigram count tables read by Plugins/BigramBackend
  Tests/EFTTokenizerTests/Goldens/tiny.json  HF tokenizers' ids and decodings for a varied text set

The models are token bigram tables (the test backend's format), trained on a synthetic world:
  small_base   prose, a small sample of it
  large_base   prose, all of it (knows more pairs)
  small_chat   small_base + question/answer turns in the chat format (the "fine-tune")
  large_chat   large_base + the same turns (the reference EFT emulates; used for down-scaling)
  small_terse  small_base + terse answers in the chat format (a second fine-tune, for interpolation)

Run from the repository root:  python3 scripts/make_tiny_models.py
"""
import json
import os
import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "examples", "models", "tiny")
GOLDENS = os.path.join(ROOT, "Tests", "EFTTokenizerTests", "Goldens")
SPECIALS = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"]
CHAT = "<|user|>\n{q}\n<|assistant|>\n"

rng = random.Random(1234)
NAMES = ["Tomas", "Ilse", "Marek", "Yuna", "Oskar", "Pella", "Bram", "Sanne", "Ravi", "Lotte",
         "Dario", "Mina", "Hugo", "Tess", "Anouk", "Pim"]
TOWNS = ["Oakridge", "Saltmere", "Brindle", "Westholm", "Copperfield", "Larkton", "Mossbay", "Fennick"]
TRADES = ["baker", "smith", "weaver", "potter", "fisher", "carpenter", "miller", "tailor"]
FILLER = [
    "The morning was quiet and the river ran slow.",
    "Rain fell on the roofs of the old market.",
    "Children played near the well until the bells rang.",
    "The road to the hills was long and dusty.",
    "In winter the lake froze and the boats stayed home.",
    "Travellers told stories by the fire at the inn.",
]
FACTS = {n: (rng.choice(TOWNS), rng.choice(TRADES)) for n in NAMES}


def prose(n_sentences, rng):
    out = []
    for _ in range(n_sentences):
        name = rng.choice(NAMES)
        town, trade = FACTS[name]
        out.append(rng.choice([
            f"{name} lives in {town}.",
            f"{name} works as a {trade} in {town}.",
            f"Everyone in {town} knows {name} the {trade}.",
            f"{name} the {trade} was born in {town}.",
            rng.choice(FILLER),
        ]))
    return " ".join(out)


def chat_turns(rng, terse):
    turns = []
    for name in NAMES:
        town, trade = FACTS[name]
        for q, a, short in [
            (f"Where does {name} live?", f"{name} lives in {town}.", f"{town}."),
            (f"What does {name} do?", f"{name} works as a {trade}.", f"A {trade}."),
        ]:
            turns.append(CHAT.format(q=q) + (short if terse else a))
    rng.shuffle(turns)
    return turns


def train_tokenizer(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    return tok


def write_bigram(path, tok, documents, fingerprint_note):
    vocab = tok.get_vocab_size()
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    counts = {}
    for doc in documents:
        ids = tok.encode(doc).ids + [eos]  # encode adds <s>
        for a, b in zip(ids, ids[1:]):
            counts[(a, b)] = counts.get((a, b), 0) + 1
    with open(path, "w") as f:
        f.write("eft-bigram 1\n")
        f.write(f"# {fingerprint_note}\n")
        f.write(f"vocab {vocab}\nbos {bos}\neos {eos}\ncontext 4096\nsmoothing 0.01\ncounts\n")
        for (a, b), c in sorted(counts.items()):
            f.write(f"{a} {b} {c}\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(GOLDENS, exist_ok=True)
    large_docs = [prose(12, rng) for _ in range(400)]
    small_docs = large_docs[:40]
    chat = chat_turns(rng, terse=False)
    terse = chat_turns(rng, terse=True)
    tok = train_tokenizer(large_docs + chat + terse + [
        "Names like Quill, Zarek and Vondel are rare. Numbers 0 1 2 3 4 5 6 7 8 9."])
    tok.save(os.path.join(OUT, "tokenizer.json"))

    write_bigram(os.path.join(OUT, "small_base.bigram"), tok, small_docs, "small base: 40 prose documents")
    write_bigram(os.path.join(OUT, "large_base.bigram"), tok, large_docs, "large base: 400 prose documents")
    write_bigram(os.path.join(OUT, "small_chat.bigram"), tok, small_docs + chat * 3, "small base + chat answers")
    write_bigram(os.path.join(OUT, "large_chat.bigram"), tok, large_docs + chat * 3, "large base + chat answers")
    write_bigram(os.path.join(OUT, "small_terse.bigram"), tok, small_docs + terse * 3, "small base + terse answers")

    texts = [
        "Hello world",
        "Tomas lives in Oakridge.",
        "  leading spaces and   runs of    spaces  ",
        "tabs\tand\nnewlines\n\n\nand trailing\n",
        "Numbers: 3.14159, 2026-11-29, 1000000 and ٣٤٥ (Arabic-Indic)",
        "def f(x):\n    return x ** 2  # square\n",
        "Unicode: naïve café, Ελληνικά, русский, 日本語のテキスト, 한국어",
        "Emoji: 👋🌍 family: 👨‍👩‍👧 flags: 🇳🇱",
        "Contractions: it's, we're, they've, I'm, you'll, he'd, don't",
        "<|user|>\nWhere does Ilse live?\n<|assistant|>\nIlse lives in Saltmere.</s>",
        "",
        " ",
        "a\u00a0b\u2003c",  # no-break and em spaces
        "!!!???...,,,;;;",
    ]
    goldens = []
    for t in texts:
        enc = tok.encode(t)
        plain = tok.encode(t, add_special_tokens=False)
        goldens.append({"text": t, "ids": enc.ids, "ids_plain": plain.ids,
                        "decoded": tok.decode(plain.ids, skip_special_tokens=False)})
    with open(os.path.join(GOLDENS, "tiny.json"), "w") as f:
        json.dump(goldens, f, ensure_ascii=False, indent=1)
    print(f"tokenizer vocab {tok.get_vocab_size()}; wrote {OUT} and {GOLDENS}")


if __name__ == "__main__":
    main()
