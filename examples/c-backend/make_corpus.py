#!/usr/bin/env python3
"""Writes the in-domain text for the n-gram example: market reports from the facts world's towns,
a kind of text the facts-world transformers never saw in training (they read biographies).

  python3 examples/c-backend/make_corpus.py   # writes data/train.txt and data/heldout.jsonl

Deterministic (seeded). train.txt has one report per line (what ngram-train counts); heldout.jsonl
has other reports as `eft eval` items: the prompt is the report's opening, the reference the rest.
"""
import json
import os
import random

TOWNS = [a + b for a in ["Oak", "Salt", "Brin", "West", "Copper", "Lark", "Moss", "Fen", "Ash", "Raven", "Stone",
                         "Elder", "Thorn", "Mill", "Frost", "Amber"]
         for b in ["ridge", "mere", "dle", "holm", "field", "ton", "bay", "wick", "ford", "haven", "moor", "gate"]]
GOODS = ["bread", "wool", "salt", "fish", "barley", "cheese", "timber", "iron", "candles", "ale", "rope", "leather"]
MOVES = ["rose", "fell", "held steady", "climbed", "slipped"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
SENTENCES = [
    "The price of {g} {m} to {p} pence.",
    "{g} {m} to {p} pence a measure.",
    "Traders from {t2} brought {g} by cart.",
    "Demand for {g} was strong before the fair.",
    "The guild of {g} sellers met on {d}.",
    "Stocks of {g} are low after the storm.",
    "Buyers from {t2} paid {p} pence for {g}.",
]


def report(rng):
    town, other = rng.sample(TOWNS, 2)
    parts = [f"Market report from {town}, {rng.choice(DAYS)}:"]
    for _ in range(rng.randint(3, 5)):
        parts.append(rng.choice(SENTENCES).format(g=rng.choice(GOODS), m=rng.choice(MOVES), p=rng.randint(2, 40),
                                                   t2=other, d=rng.choice(DAYS)))
        parts[-1] = parts[-1][0].upper() + parts[-1][1:]
    return " ".join(parts)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(0)
    os.makedirs(os.path.join(here, "data"), exist_ok=True)
    with open(os.path.join(here, "data", "train.txt"), "w") as f:
        for _ in range(4000):
            f.write(report(rng) + "\n")
    with open(os.path.join(here, "data", "heldout.jsonl"), "w") as f:
        for _ in range(100):
            text = report(rng)
            head, rest = text.split(":", 1)
            f.write(json.dumps({"prompt": head + ":", "answer": rest, "reference": rest}) + "\n")


if __name__ == "__main__":
    main()
