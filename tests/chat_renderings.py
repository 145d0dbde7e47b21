#!/usr/bin/env python3
"""Turns the chat renderings made by transformers into a TSV for tests/test_units.c.

    chat_renderings.py RENDERINGS.json SMOLLM2_CASES.json > renderings.tsv

Reads tests/fixtures/chat_templates/renderings.json (official Llama 3.2 and Qwen2.5
templates) and the `chat` cases of tests/fixtures/tokenizers/real-smollm2/cases.json
(SmolLM2's template), keeps the add_generation_prompt=True renderings, and writes one line
per conversation. Provenance: renderings.json was made by transformers'
apply_chat_template (see tests/fixtures/README.md) from the official templates as
llama.cpp keeps them for its template tests (models/templates/
meta-llama-Llama-3.2-3B-Instruct.jinja, which the 1B Instruct model shares, and
Qwen-Qwen2.5-7B-Instruct.jinja, shared by 0.5B, at llama.cpp c392e509; copies beside
renderings.json); SmolLM2's template is the one in HuggingFaceTB/SmolLM2-135M-Instruct's
tokenizer_config.json. A missing or unreadable file, or a template without renderings,
is an error (one line on stderr, exit status 1). The columns:
name, template kind, default system prompt, system prompt ('-' = none), user turns,
assistant answers (comma-separated lists), rendering; texts as hex UTF-8.
"""
import json
import sys

DEFAULT_SYSTEM = {
    "Qwen-Qwen2.5-7B-Instruct": ("chatml", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
    "meta-llama-Llama-3.2-3B-Instruct": ("llama3", ""),
    "SmolLM2": ("chatml", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
}


def hexs(s):
    return s.encode("utf-8").hex() if s else ""


def line(name, template, case):
    kind, default = DEFAULT_SYSTEM[template]
    msgs = case["messages"]
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    users = [m["content"] for m in msgs if m["role"] == "user"]
    answers = [m["content"] for m in msgs if m["role"] == "assistant"]
    return "\t".join([name, kind, hexs(default) or "-", "-" if system is None else hexs(system) or "-",
                      ",".join(hexs(u) for u in users), ",".join(hexs(a) for a in answers) or "-",
                      hexs(case["rendered"])])


def renderings_by_template(renderings, smollm2_cases):
    """{template: [case, ...]} with the add_generation_prompt=True renderings."""
    with open(renderings, encoding="utf-8") as f:
        by_template = {t: [c for c in cases if c["add_generation_prompt"]] for t, cases in json.load(f).items()}
    with open(smollm2_cases, encoding="utf-8") as f:
        by_template["SmolLM2"] = json.load(f)["chat"]
    return by_template


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        by_template = renderings_by_template(sys.argv[1], sys.argv[2])
        lines = [line(f"{t}/{c['name']}", t, c) for t, cases in by_template.items() for c in cases]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"chat_renderings.py: cannot read the renderings: {type(e).__name__}: {e}")
    empty = [t for t in DEFAULT_SYSTEM if not by_template.get(t)]
    if empty:
        sys.exit(f"chat_renderings.py: no rendering for {', '.join(empty)}")
    print("\n".join(lines))


main()
