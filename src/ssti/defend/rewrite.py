"""The rewriting defences: `paraphrase` (an instruction-following LM rewrites every text; the paper's v2
LLM-paraphrasing defence) and `grammar` (a T5-style grammar-correction model, as in the paper's v2).

One generation loop for both. A causal LM gets the prompt in its chat template (when it has one); a
seq2seq model gets "paraphrase: {text}" / "grammar: {text}". Rows are generated in batches of similar
length, greedily (or sampled with a seeded generator when temperature > 0), and every finished batch is
appended to `work/rows.jsonl`, so an interrupted call resumes and never redoes a finished row. An empty
generation keeps the original text (counted in the record as `empty_outputs`).
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import torch

from ssti.data.common import class_names_of, column, make_split
from ssti.defend.lm import load_lm, row_progress

DEFAULT_MODEL = "smollm2-135m"
CHAT_PROMPT = ("Paraphrase the following text. Keep its meaning and about its length. Reply with the paraphrase only.\n\n"
               "Text: {text}")
SEQ2SEQ_PROMPT = {"paraphrase": "paraphrase: {text}", "grammar": "grammar: {text}"}
MAX_NEW_TOKENS = 512
PROGRESS_FILE = "rows.jsonl"


def prompts(tokenizer, texts: list[str], template: str, seq2seq: bool) -> list[str]:
    """The model inputs: `template` filled with each text, in the chat template of a causal LM that has one."""
    filled = [template.format(text=t) for t in texts]
    if seq2seq or not getattr(tokenizer, "chat_template", None):
        return filled
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True) for p in filled]


@torch.no_grad()
def generate(model, tokenizer, inputs: list[str], seq2seq: bool, max_new_tokens: int | None, temperature: float, seed: int) -> list[str]:
    """One batch: the decoded continuations (causal) or outputs (seq2seq) of `inputs`, stripped."""
    tokenizer.padding_side = "right" if seq2seq else "left"
    enc = tokenizer(inputs, return_tensors="pt", padding=True, add_special_tokens=seq2seq)
    longest = int(enc["attention_mask"].sum(1).max())
    budget = max_new_tokens or min(MAX_NEW_TOKENS, 2 * longest + 16)
    kwargs = {"max_new_tokens": budget, "pad_token_id": tokenizer.pad_token_id, "do_sample": temperature > 0}
    if temperature > 0:
        kwargs["temperature"] = temperature
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.random.fork_rng(devices=[]):  # sampling is seeded per batch, global state untouched
        torch.manual_seed(seed)
        out = model.generate(**enc, **kwargs)
    new = out if seq2seq else out[:, enc["input_ids"].shape[1]:]
    return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]


def rewrite(data: datasets.DatasetDict, spec, show_progress: bool = False, work: Path | None = None):
    """Rewrite every text of `spec.split` (`spec`: a DefenceSpec named paraphrase or grammar). Returns
    (defended DatasetDict, manifest rows of the changed rows, notes, record)."""
    name = spec.model or DEFAULT_MODEL
    model, tokenizer, seq2seq = load_lm(name)
    template = spec.prompt or (SEQ2SEQ_PROMPT[spec.name] if seq2seq else CHAT_PROMPT)
    split = data[spec.split]
    names = class_names_of(data)
    ids, texts, labels = column(split, "id"), column(split, "text"), column(split, "label")
    done = _finished(work, set(ids))
    todo = [i for i, r in enumerate(ids) if r not in done]
    todo.sort(key=lambda i: len(texts[i]))  # similar lengths batch together
    resumed = len(done)
    empty = 0
    rng = np.random.default_rng(spec.seed)
    seeds = rng.integers(2**31 - 1, size=max(1, -(-len(ids) // spec.batch_size)))
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    with row_progress(f"{spec.name} ({name})", len(ids), show_progress, done=resumed) as advance:
        for n, k in enumerate(range(0, len(todo), spec.batch_size)):
            chunk = todo[k:k + spec.batch_size]
            outs = generate(model, tokenizer, prompts(tokenizer, [texts[i] for i in chunk], template, seq2seq), seq2seq,
                            spec.max_new_tokens, spec.temperature, int(seeds[n % len(seeds)]))
            lines = []
            for i, o in zip(chunk, outs):
                done[ids[i]] = o
                lines.append(json.dumps({"id": ids[i], "text": o}, ensure_ascii=False) + "\n")
            if work is not None:
                with open(work / PROGRESS_FILE, "a", encoding="utf-8") as f:
                    f.write("".join(lines))
            advance(len(chunk))
    new_texts, manifest = [], []
    for r, t, y in zip(ids, texts, labels):
        got = done[r]
        if not got:
            empty += 1
            got = t
        new_texts.append(got)
        if got != t:
            manifest.append({"id": r, "split": spec.split, "label": y, "class": names[y], "action": "rewrite", "before": t, "after": got})
    new_split = make_split(ids, new_texts, labels, names)
    notes = [f"{empty:,} rows got an empty rewrite and keep their original text"] if empty else []
    record = {"model": name, "seq2seq": seq2seq, "prompt": template, "temperature": spec.temperature, "rows_changed": len(manifest),
              "empty_outputs": empty, "resumed_rows": resumed}
    return datasets.DatasetDict({**data, spec.split: new_split}), manifest, notes, record


def _finished(work: Path | None, wanted: set[str]) -> dict[str, str]:
    """Rows an earlier, interrupted call finished (a half-written last line is ignored)."""
    done: dict[str, str] = {}
    if work is None or not (work / PROGRESS_FILE).exists():
        return done
    good = []
    for line in (work / PROGRESS_FILE).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("id") in wanted and isinstance(row.get("text"), str):
            done[row["id"]] = row["text"]
            good.append(line + "\n")
    (work / PROGRESS_FILE).write_text("".join(good), encoding="utf-8")  # drop a half-written line before appending again
    return done
