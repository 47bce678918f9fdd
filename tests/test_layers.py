"""The import graph of `ssti` follows the stage order of DESIGN.md, and the command line starts light."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_layers_contract_holds_and_there_is_no_import_cycle():
    """import-linter's layers contract in pyproject.toml: each stage imports only the stages below it
    (which also rules out every cycle between stages)."""
    code = f"from importlinter.cli import lint_imports; raise SystemExit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_no_cycle_between_any_two_modules():
    """No module of ssti takes part in an import cycle (grimp's graph, every import statement counted)."""
    import grimp

    graph = grimp.build_graph("ssti")
    modules = sorted(graph.modules)
    cycles = [(a, b) for a in modules for b in graph.find_modules_directly_imported_by(a)
              if b != a and not b.startswith(a + ".") and not a.startswith(b + ".")
              and graph.chain_exists(importer=b, imported=a)]
    assert not cycles, cycles[:5]


def _imports_torch(code: str) -> bool:
    probe = f"import sys\n{code}\nprint('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return done.stdout.strip().splitlines()[-1] == "True"


def test_planning_and_reporting_do_not_import_torch(tmp_path):
    """`ssti sweep --dry-run --no-estimate` and `ssti report` must run where torch is slow to import or absent
    (the time estimate needs each model's size, tokenizer and this machine's matmul peak: it imports torch)."""
    sweep = tmp_path / "s.yaml"
    sweep.write_text("base: {data: {dataset: rotten-tomatoes}, model: {name: tiny-random-llama}}\naxes: {lora.rank: [1, 2]}\n")
    code = ("from typer.testing import CliRunner\nfrom ssti.cli import app\n"
            f"r = CliRunner().invoke(app, ['sweep', {str(sweep)!r}, '--out', {str(tmp_path / 'o')!r}, '--dry-run', '--no-estimate'])\n"
            "assert r.exit_code == 0, r.output\n"
            "import ssti.report.build, ssti.sweep.results, ssti.sweep.store")
    assert not _imports_torch(code)


def test_python_dash_m_ssti_cli_sees_every_command():
    for module in ("ssti", "ssti.cli"):
        done = subprocess.run([sys.executable, "-m", module, "train", "--help"], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0 and "--rank" in done.stdout, done.stderr[-1000:]


def test_benchmarks_import_and_name_only_existing_ssti_apis():
    """The benchmarks are not run in CI (they time things), but an API they call that no longer exists fails here."""
    import ast
    import importlib

    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ssti"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path.name}: {node.module}.{alias.name} does not exist"
