#!/usr/bin/env python3
"""eft-server's HTTP front with the official `openai` package (pip install openai).

    eft-server examples/configs/facts.pbtxt --http tcp:8080
    python3 examples/python-client/openai_example.py --base-url http://127.0.0.1:8080/v1

Prints a completion and a streamed chat reply of the facts graphs, and the same question with a
stronger fine-tuning delta (the graph parameter `beta`, sent with extra_body). With --check it
also asserts what CI expects of the bundled facts models, and that errors come back as the
openai package's exceptions.
"""
import argparse
import sys

import openai
from openai import OpenAI

PROMPT = "<|user|>\nWhere does Fenyar Balutam live?\n<|assistant|>\n"
QUESTION = "Where does Fenyar Balutam live?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", default="none", help="the server's --token-file token, if it has one")
    ap.add_argument("--check", action="store_true", help="assert the bundled facts models' answers (CI)")
    args = ap.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.api_key)

    models = [m.id for m in client.models.list()]
    print("graphs:", ", ".join(models))

    completion = client.completions.create(model="upscaled", prompt=PROMPT, max_tokens=24)
    text = completion.choices[0].text
    print("completion:", text, f"({completion.usage.completion_tokens} tokens, {completion.choices[0].finish_reason})")

    streamed = "".join(chunk.choices[0].text for chunk in
                       client.completions.create(model="upscaled", prompt=PROMPT, max_tokens=24, stream=True))

    chat = client.chat.completions.create(model="upscaled", messages=[{"role": "user", "content": QUESTION}])
    reply = chat.choices[0].message.content

    print("chat (streamed): ", end="")
    parts = []
    for chunk in client.chat.completions.create(model="upscaled", messages=[{"role": "user", "content": QUESTION}],
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
            print(chunk.choices[0].delta.content, end="", flush=True)
    print()

    # A graph parameter: what the openai package sends as extra top-level fields.
    strong = client.completions.create(model="upscaled", prompt=PROMPT, max_tokens=24, extra_body={"beta": 4.0})
    print("beta 4:", strong.choices[0].text)

    logprobs = client.chat.completions.create(model="upscaled", messages=[{"role": "user", "content": QUESTION}],
                                              logprobs=True, top_logprobs=2, max_tokens=3)
    for entry in logprobs.choices[0].logprobs.content:
        print(f"  {entry.token!r} {entry.logprob:.4f}  alternatives:",
              ", ".join(f"{t.token!r} {t.logprob:.2f}" for t in entry.top_logprobs))

    if not args.check:
        return
    assert "upscaled" in models, models
    assert text == "The answer is Frostmoor.", text
    assert streamed == text, streamed
    assert reply == text, reply
    assert "".join(parts) == text, parts
    assert strong.choices[0].text != text, strong.choices[0].text
    assert len(logprobs.choices[0].logprobs.content) == 3
    try:
        client.completions.create(model="no-such-graph", prompt="x")
        raise AssertionError("an unknown graph was served")
    except openai.NotFoundError as e:
        assert e.status_code == 404 and "no graph 'no-such-graph'" in str(e), e
    try:
        client.completions.create(model="upscaled", prompt="x", extra_body={"betta": 1})
        raise AssertionError("an unknown field was accepted")
    except openai.BadRequestError as e:
        assert "unrecognized request argument 'betta'" in str(e), e
    print("openai package: completion, chat, streams, extra_body and errors as expected")


if __name__ == "__main__":
    sys.exit(main())
