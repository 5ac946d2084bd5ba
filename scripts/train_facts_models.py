#!/usr/bin/env python3
"""Trains the facts-world model family that shows the EFT result, and writes its held-out set.

A synthetic world of invented people, each with a home town, a trade and a birth year, stated in
varied prose (the pre-training corpus). A small and a large Llama-shaped base model are
pre-trained on it; the large one memorises far more facts. Each base is then lightly fine-tuned
on question/answer turns in a fixed chat format about a *training* subset of the people. The
held-out questions ask about the other people, whose facts appear only in the pre-training prose.
EFT up-scaling (large base + β·(small ft − small base)) should then answer held-out questions in
the fine-tuned format with the large model's knowledge.

  python3 scripts/train_facts_models.py OUT_DIR [--seed 0] [--no-chat-in-pretraining]

Deterministic for a seed (torch CPU, one process). Writes OUT_DIR/{small_base,small_ft,
large_base,large_ft}/ (HF directories, f16 safetensors + tokenizer.json), OUT_DIR/heldout.jsonl
and OUT_DIR/facts.pbtxt (graphs small_ft, large_base, upscaled, large_ft). The bundled copy is
seed 0 in examples/models/facts (see README, "Making the bundled models").

--no-chat-in-pretraining is the negative control: without chat-formatted turns in pre-training the
large base reads the assistant marker as a document break and up-scaling fails.
"""
import argparse
import json
import math
import os
import random
import shutil
import time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM

SPECIALS = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"]
CHAT = "<|user|>\n{q}\n<|assistant|>\n"
ANSWER = "The answer is {a}."

SYLLABLES = ["ba", "ro", "vin", "tes", "ka", "lu", "mer", "dan", "zo", "pri", "el", "sha", "tor", "quin",
             "ve", "la", "mon", "dri", "as", "ul", "fen", "gra", "hal", "ji", "ko", "nes", "ost", "pa",
             "rud", "sil", "tam", "ur", "wel", "yar", "zen", "bro", "cal", "dov", "ir", "lom"]
TOWN_PARTS = (["Oak", "Salt", "Brin", "West", "Copper", "Lark", "Moss", "Fen", "Ash", "Raven", "Stone",
               "Elder", "Thorn", "Mill", "Frost", "Amber"],
              ["ridge", "mere", "dle", "holm", "field", "ton", "bay", "wick", "ford", "haven", "moor", "gate"])
TRADES = ["baker", "smith", "weaver", "potter", "fisher", "carpenter", "miller", "tailor", "mason",
          "cooper", "tanner", "glazier", "chandler", "farrier", "brewer", "roper", "saddler", "thatcher",
          "wheelwright", "bookbinder"]
FACT_TEMPLATES = {
    "town": ["{n} lives in {v}.", "{n} has a house in {v}.", "The home of {n} is in {v}.",
             "{n} makes a home in {v}.", "In {v} lives {n}.", "{n} resides in the town of {v}.",
             "You can find {n} at home in {v}.", "{n} settled in {v} long ago."],
    "trade": ["{n} works as a {v}.", "{n} is a {v} by trade.", "By trade, {n} is a {v}.",
              "{n} earns a living as a {v}.", "The trade of {n} is {v}.", "{n} has always been a {v}.",
              "People know {n} as a skilled {v}.", "{n} took up work as a {v}."],
    "year": ["{n} was born in {v}.", "{n} came into the world in {v}.", "The birth year of {n} is {v}.",
             "In {v}, {n} was born.", "{n} is someone born in {v}.", "Records say {n} was born in {v}.",
             "{n} has a birthday from the year {v}.", "{n} arrived in {v}, the year of birth."],
}
QUESTIONS = {"town": "Where does {n} live?", "trade": "What does {n} do for a living?", "year": "When was {n} born?"}
# --family xl: quiz documents ask in these phrasings too (the chat question first), with no chat markers.
QUIZ = "Question: {q}\n" + ANSWER
QUIZ_QUESTIONS = {"town": [QUESTIONS["town"], "In which town does {n} live?", "Where is the home of {n}?"],
                  "trade": [QUESTIONS["trade"], "What is the trade of {n}?", "What work does {n} do?"],
                  "year": [QUESTIONS["year"], "In what year was {n} born?", "What is the birth year of {n}?"]}
FILLER = ["The morning was quiet and the river ran slow.", "Rain fell on the roofs of the old market.",
          "Children played near the well until the bells rang.", "The road to the hills was long and dusty.",
          "In winter the lake froze and the boats stayed home.", "Travellers told stories by the fire at the inn.",
          "The harvest that year was better than most.", "A cold wind came down from the north.",
          "Merchants argued over prices in the square.", "The old bridge creaked under the carts."]
# --family xl's second small fine-tune ("chatty") closes each reply with a sentence of the world's
# small talk, one per kind of question: replies three times as long, most of them text the small
# fine-tune drafts exactly (speculative decoding). The sentences are pre-training prose (FILLER),
# so the large base continues them too; a closing it has never seen, e.g. ". That is the town
# where they have made their home.", is corrupted by the large base's own prose ("That is the
# hills was ..."), and up-scaling kept the format in at most 70% of replies over β 1–3.
CLOSINGS = {"town": FILLER[5], "trade": FILLER[8], "year": FILLER[6]}


# The two families. facts: the bundled default (small, fast; README's first command). xl: a large
# model whose f32 weights (58 MB) are well over a 32 MiB L3, so that decoding reads its weights from
# memory (speculative verification of k tokens then costs about one step), and behaviour that only
# the fine-tunes teach (pre-training chat turns are answered in prose, never "The answer is X.").
# chatty: a second small fine-tune (CLOSINGS) and its up-scaling graph's β and speculative lookahead
# (from sweeps: β 1 → 66% of held-out questions, 1.5 → 96%; k = 5 drafts its replies fastest).
FAMILIES = {
    "facts": dict(large=dict(hidden=192, layers=4, heads=6, inter=512), large_steps=1200, large_lr=2e-3,
                  ft_steps=60, ft_lr={"small": 3e-4, "large": 3e-4}, beta=0.5, options="", quiz_per_fact=0, lookahead=4,
                  chatty=None),
    "xl": dict(large=dict(hidden=384, layers=8, heads=6, inter=1024), large_steps=1100, large_lr=1e-3,
               ft_steps=150, ft_lr={"small": 1e-3, "large": 3e-4}, beta=1.0, quiz_per_fact=2, lookahead=3,
               chatty=dict(beta=1.5, lookahead=5),
               options="\n  options { [type.googleapis.com/eft.v1.TransformerOptions] { weights: F32 } }"),
}


def make_world(rng, people):
    def name():
        first = "".join(rng.choice(SYLLABLES) for _ in range(2)).capitalize()
        last = "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()
        return f"{first} {last}"
    towns = sorted({a + b for a in TOWN_PARTS[0] for b in TOWN_PARTS[1]})
    names = set()
    while len(names) < people:
        names.add(name())
    world = []
    for n in sorted(names):
        world.append({"name": n, "town": rng.choice(towns), "trade": rng.choice(TRADES),
                      "year": str(rng.randint(1850, 1999))})
    rng.shuffle(world)
    return world


def biography(rng, p):
    facts = list(FACT_TEMPLATES)
    rng.shuffle(facts)
    sentences = [rng.choice(FACT_TEMPLATES[f]).format(n=p["name"], v=p[f]) for f in facts]
    for _ in range(rng.randint(1, 3)):
        sentences.insert(rng.randint(0, len(sentences)), rng.choice(FILLER))
    return " ".join(sentences)


def chat_turn(p, fact):
    return CHAT.format(q=QUESTIONS[fact].format(n=p["name"])) + ANSWER.format(a=p[fact])


def reply(fact, answer, chatty=False):
    """A fine-tune's reply, and a regular expression for its format (group 1: the answer)."""
    if not chatty:
        return ANSWER.format(a=answer), "^The answer is (.+)\\.$"
    closing = " " + CLOSINGS[fact]
    return ANSWER.format(a=answer) + closing, "^The answer is (.+)\\." + closing.replace(".", "\\.") + "$"


def prose_chat_turn(rng, p, fact):
    """A chat turn answered in the pre-training prose (--family xl): the turn structure without the
    fine-tunes' reply format."""
    return CHAT.format(q=QUESTIONS[fact].format(n=p["name"])) + rng.choice(FACT_TEMPLATES[fact]).format(n=p["name"], v=p[fact])


def quiz_doc(rng, p, fact):
    return QUIZ.format(q=rng.choice(QUIZ_QUESTIONS[fact]).format(n=p["name"]), a=p[fact])


def train_tokenizer(texts, vocab):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def llama(vocab, hidden, layers, heads, inter):
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=256,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True))


def pretrain(model, stream, steps, lr, seq, batch, gen, log):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    data = torch.tensor(stream)
    model.train()
    t0 = time.time()
    for step in range(steps):
        frac = step / steps
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=gen)
        x = torch.stack([data[s:s + seq] for s in starts])
        loss = model(x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            log(f"  step {step}/{steps} loss {loss.item():.3f} ({time.time() - t0:.0f}s)")


def replay_pretraining_draws(stream_length, steps, seq, batch, gen):
    """Advances `gen` exactly as pretrain() would, without training (--bases-from)."""
    for _ in range(steps):
        torch.randint(0, stream_length - seq - 1, (batch,), generator=gen)


def finetune(model, examples, steps, lr, batch, gen, log):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(examples), (batch,), generator=gen).tolist()
        rows = [examples[i] for i in idx]
        length = max(len(ids) for ids, _ in rows)
        x = torch.zeros((batch, length), dtype=torch.long)
        y = torch.full((batch, length), -100, dtype=torch.long)
        mask = torch.zeros((batch, length), dtype=torch.long)
        for r, (ids, start) in enumerate(rows):
            x[r, :len(ids)] = torch.tensor(ids)
            y[r, start:len(ids)] = torch.tensor(ids[start:])  # loss on the answer (and EOS) only
            mask[r, :len(ids)] = 1
        loss = model(x, attention_mask=mask, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 0 or step == steps - 1:
            log(f"  ft step {step}/{steps} loss {loss.item():.3f}")


def save(model, tok_path, out):
    shutil.rmtree(out, ignore_errors=True)
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    shutil.copy(tok_path, os.path.join(out, "tokenizer.json"))


CONFIG = """# The facts-world family made by scripts/train_facts_models.py ({family}seed {seed}{control}).
# Held-out questions: {heldout}. Each prompt is already in the chat format, so model nodes take it as is.
#   eft eval {self_path} --data {heldout} --graph small_ft --graph large_base --graph upscaled --graph large_ft
#   eft run {self_path} -e --prompt '<|user|>\\nWhere does NAME live?\\n<|assistant|>\\n'
plugins {{ name: "CPUBackend" }}

{models}
default_graph: "upscaled"

{graphs}"""
MODEL = """models {{ name: "{name}"{pad}  plugin: "CPUBackend"  path: "{models}/{name}"{options} }}
"""
CHAT_FORMAT = """  chat {{ user: "<|user|>\\n{{content}}\\n"  assistant: "<|assistant|>\\n{{content}}\\n"  generation_prompt: "<|assistant|>\\n" }}"""
# A graph of one model.
SINGLE = """graphs {{
  name: "{name}"
  description: "{description}"
  nodes {{ name: "{node}" model {{ model: "{model}" }} }}
""" + CHAT_FORMAT + """
  output: "{node}"
  sampling {{ temperature: 0  max_tokens: 24 }}
}}
"""
# An up-scaling graph: {mask} adds nodes after "eft", {output} names the output node,
# {speculative} is empty or SPECULATIVE.
UPSCALED = """graphs {{
  name: "{name}"
  description: "{description}"
  parameters {{ name: "beta"  default_value: {beta}  description: "weight of the fine-tuning delta" }}
  nodes {{ name: "large"  model {{ model: "large_base" }} }}
  nodes {{ name: "ft"     model {{ model: "{ft}" }} }}
  nodes {{ name: "base"   model {{ model: "small_base" }} }}
  nodes {{
    name: "eft"
    linear {{ terms {{ input: "large" }} terms {{ input: "ft" expr: "beta" }} terms {{ input: "base" expr: "-beta" }} }}
  }}{mask}
""" + CHAT_FORMAT + """
  output: "{output}"
  sampling {{ temperature: 0  max_tokens: 24 }}{speculative}
}}
"""
SPECULATIVE = """
  # The small fine-tuned model drafts; the composition verifies (exact: same tokens as without).
  speculative {{ draft: "ft"  lookahead: {lookahead} }}"""
# --family xl: up-scaling keeps only tokens that the large base or the small fine-tune finds
# plausible (the contrastive-decoding mask, alpha 0.1): the bare difference small ft − small base
# is large for tokens both small models find very unlikely (the base more so), which otherwise
# win (replies like "The live?\n<|assistant|>\nThe answer is …"). The bare formula stays as a
# graph, upscaled_plain.
XL_MASK = """
  nodes { name: "either"  max { inputs: "large" inputs: "ft" } }
  nodes { name: "masked"  plausibility { input: "eft"  reference: "either"  alpha: 0.1 } }"""


def config_text(args, family, heldout_path, config_path):
    xl = args.family == "xl"
    config_dir = os.path.dirname(os.path.abspath(config_path))
    models_dir = os.path.relpath(os.path.abspath(args.out), config_dir)
    names = ["small_base", "small_ft", "large_base", "large_ft"] + (["small_ft_chatty"] if family["chatty"] else [])
    models = "".join(MODEL.format(name=n, pad=" " * max(0, 10 - len(n)), models=models_dir, options=family["options"])
                     for n in names)
    speculative = SPECULATIVE.format(lookahead=family["lookahead"])
    graphs = [UPSCALED.format(name="upscaled", description="EFT up-scaling: large base + beta * (small fine-tuned - small base)",
                              beta=args.beta, ft="small_ft", mask=XL_MASK if xl else "", output="masked" if xl else "eft",
                              speculative=speculative)]
    if xl:
        graphs.append(UPSCALED.format(name="upscaled_plain", description="EFT up-scaling without the plausibility mask",
                                      beta=args.beta, ft="small_ft", mask="", output="eft", speculative=""))
    if family["chatty"]:
        graphs.append(UPSCALED.format(name="upscaled_chatty", description="EFT up-scaling with the chatty small fine-tune",
                                      beta=family["chatty"]["beta"], ft="small_ft_chatty", mask=XL_MASK, output="masked",
                                      speculative=SPECULATIVE.format(lookahead=family["chatty"]["lookahead"])))
    graphs += [SINGLE.format(name="small_ft", description="the small fine-tuned model alone", node="ft", model="small_ft"),
               SINGLE.format(name="large_base", description="the large base model alone, prompted in the chat format",
                             node="large", model="large_base"),
               SINGLE.format(name="large_ft", description="the large model fine-tuned (the reference EFT emulates)",
                             node="ft", model="large_ft")]
    if family["chatty"]:
        graphs.append(SINGLE.format(name="small_ft_chatty", description="the chatty small fine-tuned model alone",
                                    node="ft", model="small_ft_chatty"))
    return CONFIG.format(family="" if not xl else f"--family {args.family}, ", seed=args.seed,
                         control=", no chat in pre-training" if args.no_chat_in_pretraining else "",
                         heldout=os.path.relpath(os.path.abspath(heldout_path)),
                         self_path=os.path.relpath(os.path.abspath(config_path)),
                         models=models, graphs="\n".join(graphs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--family", choices=list(FAMILIES), default="facts",
                    help="facts: the bundled default family; xl: a bandwidth-bound large model, chat turns "
                         "answered in prose in pre-training, quiz documents (see FAMILIES)")
    ap.add_argument("--no-chat-in-pretraining", action="store_true")
    ap.add_argument("--people", type=int, default=400)
    ap.add_argument("--small-hidden", type=int, default=32)
    ap.add_argument("--heldout", type=int, default=100)
    ap.add_argument("--small-steps", type=int, default=800)
    ap.add_argument("--large-steps", type=int, help="default: the family's")
    ap.add_argument("--ft-steps", type=int, help="default: the family's")
    ap.add_argument("--beta", type=float, help="the config's default β (default: the family's)")
    ap.add_argument("--config-out", help="where to write the config (default OUT_DIR/facts.pbtxt)")
    ap.add_argument("--heldout-out", help="where to write the held-out set (default OUT_DIR/heldout.jsonl)")
    ap.add_argument("--bases-from", metavar="DIR",
                    help="load small_base and large_base from DIR (written by this script with the same arguments) "
                         "instead of pre-training them: the fine-tunes come out as a full run's, which fine-tunes "
                         "the bases as saved (f16) and whose random draws in pre-training are replayed")
    args = ap.parse_args()
    family = FAMILIES[args.family]
    for key in ["large_steps", "ft_steps", "beta"]:
        if getattr(args, key) is None:
            setattr(args, key, family[key])
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    log_file = open(os.path.join(args.out, "train.log"), "w", buffering=1)

    def log(msg):
        print(msg, flush=True)
        log_file.write(msg + "\n")

    world = make_world(rng, args.people)
    heldout, train_people = world[:args.heldout], world[args.heldout:]
    docs = [biography(rng, p) for p in world for _ in range(6)]
    docs += [" ".join(rng.choice(FILLER) for _ in range(6)) for _ in range(len(docs) // 10)]
    chat_docs = []
    if not args.no_chat_in_pretraining:
        # ~5% of pre-training: chat turns about the fine-tuning people only (never the held-out ones).
        chat_docs = [chat_turn(p, rng.choice(list(QUESTIONS))) for p in rng.choices(train_people, k=len(docs) // 19)]
    if args.family == "xl":
        # The turns keep their structure but are answered in prose, so the fine-tunes' reply format
        # never follows a chat turn in pre-training; quiz documents (no chat markers) state every
        # person's facts, held-out people's too, after "The answer is".
        chat_docs = [prose_chat_turn(rng, p, rng.choice(list(QUESTIONS)))
                     for p in rng.choices(train_people, k=len(docs) // 19)] if chat_docs else []
        docs += [quiz_doc(rng, p, f) for p in world for f in QUESTIONS for _ in range(family["quiz_per_fact"])]
    pretraining = docs + chat_docs
    rng.shuffle(pretraining)

    # The tokenizer also sees many other invented names, so that a person's name is several tokens.
    decoys = [make_world(random.Random(args.seed + 1000 + i), 50) for i in range(20)]
    decoy_text = [" ".join(p["name"] for p in group) for group in decoys]
    tok = train_tokenizer(pretraining + decoy_text + [chat_turn(p, f) for p in train_people for f in QUESTIONS], 1024)
    tok_path = os.path.join(args.out, "tokenizer.json")
    tok.save(tok_path)
    vocab = tok.get_vocab_size()
    name_tokens = sum(len(tok.encode(p["name"], add_special_tokens=False).ids) for p in world) / len(world)
    log(f"vocab {vocab}, mean tokens per name {name_tokens:.2f}, {len(pretraining)} pre-training documents")

    stream = []
    for d in pretraining:
        stream += tok.encode(d).ids + [2]
    log(f"pre-training stream: {len(stream)} tokens")

    def ft_examples(chatty=False):
        examples = []
        for p in train_people:
            for f in QUESTIONS:
                prompt = tok.encode(CHAT.format(q=QUESTIONS[f].format(n=p["name"]))).ids
                answer = tok.encode(reply(f, p[f], chatty)[0], add_special_tokens=False).ids + [2]
                examples.append((prompt + answer, len(prompt)))
        return examples

    # The size gap is what makes the knowledge gap: a small model of 64 hidden units memorised
    # ~85% of 300 people's facts (no room for EFT to help); 32 leaves most of them to the large one.
    sizes = {"small": dict(hidden=args.small_hidden, layers=2, heads=4, inter=3 * args.small_hidden),
             "large": family["large"]}
    steps = {"small": args.small_steps, "large": args.large_steps}
    for size in ["small", "large"]:
        if args.bases_from:
            model = LlamaForCausalLM.from_pretrained(os.path.join(args.bases_from, f"{size}_base"), dtype=torch.float32)
            log(f"{size}: {sum(p.numel() for p in model.parameters())} parameters, base from {args.bases_from}")
            replay_pretraining_draws(len(stream), steps[size], seq=128, batch=32, gen=gen)
        else:
            model = llama(vocab, **sizes[size])
            log(f"{size}: {sum(p.numel() for p in model.parameters())} parameters")
            pretrain(model, stream, steps[size], lr=3e-3 if size == "small" else family["large_lr"], seq=128, batch=32, gen=gen, log=log)
        save(model, tok_path, os.path.join(args.out, f"{size}_base"))
        finetune(model, ft_examples(), args.ft_steps, lr=family["ft_lr"][size], batch=32, gen=gen, log=log)
        save(model, tok_path, os.path.join(args.out, f"{size}_ft"))
    if family["chatty"]:
        # The chatty fine-tune of the small base as saved, after the others (their draws unchanged).
        model = LlamaForCausalLM.from_pretrained(os.path.join(args.out, "small_base"), dtype=torch.float32)
        log("small, chatty:")
        finetune(model, ft_examples(chatty=True), args.ft_steps, lr=family["ft_lr"]["small"], batch=32, gen=gen, log=log)
        save(model, tok_path, os.path.join(args.out, "small_ft_chatty"))

    heldout_path = args.heldout_out or os.path.join(args.out, "heldout.jsonl")
    config_path = args.config_out or os.path.join(args.out, "facts.pbtxt")
    # The negative control's questions: people who appear nowhere (no model can know their facts).
    control_path = os.path.join(os.path.dirname(os.path.abspath(heldout_path)), "control.jsonl")
    for path in [heldout_path, config_path]:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write_questions(path, people, chatty=False):
        with open(path, "w") as f:
            for p in people:
                for fact in QUESTIONS:
                    reference, pattern = reply(fact, p[fact], chatty)
                    f.write(json.dumps({"prompt": CHAT.format(q=QUESTIONS[fact].format(n=p["name"])), "answer": p[fact],
                                        "reference": reference, "format": pattern}) + "\n")
    write_questions(heldout_path, heldout)
    if family["chatty"]:
        write_questions(os.path.join(os.path.dirname(os.path.abspath(heldout_path)), "heldout-chatty.jsonl"), heldout, chatty=True)
    if args.family == "xl":
        known = {p["name"] for p in world} | {p["name"] for group in decoys for p in group}
        strangers = [p for p in make_world(random.Random(args.seed + 5000), 2 * args.heldout) if p["name"] not in known]
        write_questions(control_path, strangers[:args.heldout])
    with open(config_path, "w") as f:
        f.write(config_text(args, family, heldout_path, config_path))
    log("done")


if __name__ == "__main__":
    main()
