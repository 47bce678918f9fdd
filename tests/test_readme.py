"""The README is a test: every shell and Python block runs, with the embedded models swapped for the
tiny random ones and step counts cut, each block in a fresh folder.

A block preceded by `<!-- readme-test: syntax-only (why) -->` cannot run here (the make targets, hub
models, several GPUs, placeholders): each `ssti` command in it must still parse (`--help` of the
command, every option it uses known to that command), and a Python block must compile.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ssti.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(\S+)")
SWAP = {"smollm2-135m": "tiny-random-llama", "minilm-l6": "tiny-random-bert"}
FAST = ["model.name=tiny-random-llama", "train.steps=2", "train.batch_size=4", "eval.max_samples=20"]


def blocks() -> list[tuple[int, str, str, str]]:
    """(line, language, marker or '', code) of every fenced bash/python block of the README."""
    out, lines = [], README.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(bash|python)\s*$", lines[i])
        if m:
            j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            marker = MARKER.search(prev)
            out.append((i + 1, m.group(1), marker.group(1) if marker else "", "\n".join(lines[i + 1:j])))
            i = j
        i += 1
    return out


def commands(code: str) -> list[list[str]]:
    """The commands of a shell block as argv lists (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def tiny_argv(argv: list[str]) -> list[str]:
    """An `ssti` command made cheap: tiny models, 2 steps, a small evaluation."""
    argv = [SWAP.get(a, a) for a in argv]
    if "--steps" in argv:
        argv[argv.index("--steps") + 1] = "2"
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "train":
        argv += ["--batch-size", "4", "--max-length", "32"]
    if cmd == "eval" and "--max-samples" not in argv:
        argv += ["--max-samples", "20"]
    if cmd == "eval":
        argv[argv.index("--max-samples") + 1] = "20"
    if cmd == "scan" and "--tokenizer" not in argv:
        argv += ["--tokenizer", "tiny-random-llama"]
    if cmd == "defend" and "--tokenizer" not in argv and any(a.startswith("scan-") for a in argv):
        argv += ["--tokenizer", "tiny-random-llama"]
    if cmd == "probe" and "--max-samples" not in argv:
        argv += ["--max-samples", "20"]
    if cmd in ("run", "demo", "sweep"):
        argv += FAST
    return argv


def tiny_configs(folder: Path) -> None:
    """The shipped configs, with every sweep cut to its first point and one variant (2 runs at most)."""
    (folder / "configs").mkdir()
    for path in (ROOT / "configs").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        grids = data.get("grids") or ([data] if "axes" in data or "zip" in data else [])
        for grid in grids:
            if grid.get("axes"):
                grid["axes"] = {k: v[:1] for k, v in grid["axes"].items()}
            if grid.get("zip"):
                grid["zip"] = [{k: v[:1] for k, v in group.items()} for group in grid["zip"]]
            if grid.get("variants"):
                grid["variants"] = dict(list(grid["variants"].items())[:2])
        if data.get("grids"):
            data["grids"] = data["grids"][:2]
        (folder / "configs" / path.name).write_text(yaml.safe_dump(data, sort_keys=False))


def check_syntax(argv: list[str]) -> None:
    """The command exists and knows every option the README gives it."""
    if argv[0] != "ssti":
        assert argv[0] in ("make", "accelerate", "torchrun"), argv
        if argv[0] == "make":
            targets = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M)
            assert all(t in targets for t in argv[1:]), argv
            return
        argv = ["ssti"] + argv[argv.index("ssti.cli") + 1:]
    res = CliRunner().invoke(app, argv[1:2] + ["--help"], terminal_width=400)
    assert res.exit_code == 0, res.output
    for opt in (a.split("=")[0] for a in argv[2:] if a.startswith("--")):
        assert opt in res.output, f"{opt} is not an option of `ssti {argv[1]}`"


README_BLOCKS = blocks()


@pytest.mark.parametrize("line, lang, marker, code", README_BLOCKS, ids=[f"README:{b[0]}" for b in README_BLOCKS])
def test_readme_block(line, lang, marker, code, tmp_path, monkeypatch):
    assert marker in ("", "syntax-only"), f"README:{line}: unknown marker {marker!r}"
    if marker:
        if lang == "bash":
            for argv in commands(code):
                check_syntax(argv)
        else:
            compile(code, f"README:{line}", "exec")
        return
    monkeypatch.chdir(tmp_path)
    tiny_configs(tmp_path)
    if lang == "python":
        for name, tiny in SWAP.items():
            code = code.replace(f'"{name}"', f'"{tiny}"')
        code = re.sub(r"steps=\d+", "steps=2", code).replace('"steps": 60', '"steps": 2')
        code = code.replace("batch_size=16", "batch_size=4")
        exec(compile(code, f"README:{line}", "exec"), {"__name__": "readme"})
        return
    for argv in commands(code):
        assert argv[0] == "ssti", f"README:{line}: {argv[0]} in a block without a syntax-only marker"
        argv = tiny_argv(argv)
        res = CliRunner().invoke(app, argv[1:], terminal_width=200, env={**os.environ, "COLUMNS": "200"})
        ok = (0, 1) if argv[1] in ("scan", "probe") else (0,)  # scan/probe exit 1 when the data is suspicious / the model steered
        assert res.exit_code in ok, f"README:{line}: {shlex.join(argv)}\n{res.output[-3000:]}"


def test_every_block_is_covered():
    """A README block in another language, or a fenced block the parser misses, would go untested."""
    fences = [line for line in README.read_text().splitlines() if line.startswith("```") and line.strip() != "```"]
    assert all(f.strip() in ("```bash", "```python", "```yaml") for f in fences), fences
    assert len([b for b in README_BLOCKS if not b[2]]) >= 3
