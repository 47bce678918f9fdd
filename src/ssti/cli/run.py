"""`ssti train`, `ssti eval`, `ssti run` and `ssti demo`: thin layers over the Python API.

Every run-shaped command resolves to one `RunConfig` by one rule (`ssti.config.load_run_config`): a
preset fills in values, then options and dotted `key=value` overrides win.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console

from ssti.cli.app import command, shown
from ssti.cli.options import out_path, section, spec_options
from ssti.config import DataSpec, EvalSpec, LoraSpec, ModelSpec, TrainSpec

OVERRIDES_HELP = "dotted KEY=VALUE overrides of the run config, e.g. lora.rank=8 train.steps=60"


def _print_configs(configs: dict) -> None:
    for name, config in configs.items():
        if len(configs) > 1:
            typer.echo(f"# {name}")
        typer.echo(yaml.safe_dump(config.dump(), sort_keys=False, allow_unicode=True).rstrip())


@command("train")
@spec_options({"data": DataSpec, "model": ModelSpec, "lora": LoraSpec, "train": TrainSpec},
              rename={"data.dataset": "--data", "model.name": "--model"}, skip={"data.fingerprint"})
def train_command(
    out: Path = typer.Option(..., "--out", parser=out_path, metavar="<path>", help="run folder to write"),
    preset: Optional[str] = typer.Option(None, "--preset", help="'paper': the authors' hyper-parameters; options you give win over it"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="a dotted KEY=VALUE override of the run config, repeatable: "
                                             "--set lora.rank=8 --set train.steps=60"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in --out from its last checkpoint (with none there: start from step 0, saying so)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the run in --out (only the files ssti wrote there)"),
    print_config: bool = typer.Option(False, "--print-config", help="print the resolved run config and exit"),
    options: dict = None,
) -> None:
    """Fine-tune a LoRA classifier on a dataset and write a run folder (config, adapter, logs, metrics).

    Example: ssti train --data data/rt-date50 --model smollm2-135m --rank 8 --targets qv --steps 60 --out runs/r8
    """
    from ssti.config import load_run_config, parse_overrides, resolve_data

    overrides = {**options, **parse_overrides(set_)}
    config = resolve_data(load_run_config({"preset": preset} if preset else {}, overrides=overrides))
    if print_config:
        _print_configs({"": config})
        return
    from ssti.train import train

    result = train(config, out, resume=resume, overwrite=overwrite)
    Console().print(f"[green]trained[/] {result.steps} steps, final loss {result.final_loss:.4f}, "
                    f"{result.tokens_per_second:.0f} real tokens/s -> {result.run_dir}")


@command("eval")
@spec_options({"": EvalSpec, "data": DataSpec}, skip={"sources", "data.dataset", "data.fingerprint"})
def eval_command(
    run_dir: Path = typer.Argument(..., help="a run folder written by `ssti train` or `ssti run`"),
    source: Optional[list[str]] = typer.Option(None, "--source", help="CLASS=SOURCE: test-time token type per target class, "
                                               "CLASS a name or index (repeatable; default: the types the run trained with)"),
    data: Optional[str] = typer.Option(None, "--data", help="evaluate on another dataset with the same classes (name, ssti folder "
                                       "or file; read with the run's column options unless --text-column etc. are given)"),
    options: dict = None,
) -> None:
    """Evaluate a run: clean accuracy and, per token type, predicted-class counts and attack success on a
    test set where every sample carries the token. With the run's own data and eval settings it writes
    metrics.json in the run folder (what `ssti results` and `ssti report` read); with --data or any
    setting that differs from the run's own (--source, --split, --max-samples, ...) it writes
    eval-<data or changed settings>-<hash>.json beside it, so the run's own results stay.

    Options not given keep the run's own eval settings (its config.yaml).
    """
    from ssti.cli.inject import parse_targets
    from ssti.config import read_run_config, validate
    from ssti.evaluate import evaluate_run, metrics_table

    config = read_run_config(run_dir)
    base = config.eval.model_dump()
    if source:
        base["sources"] = parse_targets(source, "source")
    spec = validate(EvalSpec, {**base, **section(options, "")}, "eval")
    reading = section(options, "data")
    if reading and data is None:
        from ssti.errors import SSTIError

        raise SSTIError(f"{next(iter(reading))}: only applies with --data (how to read that dataset)")
    other = validate(DataSpec, {**config.data.model_dump(), "fingerprint": None, **reading, "dataset": data}, "data") if data else None
    metrics = evaluate_run(run_dir, spec, data=other)
    Console().print(metrics_table(metrics, title=str(run_dir)))
    if metrics.get("written_to"):
        why = "another dataset" if metrics.get("eval_data") else "eval settings not the run's own: " + ", ".join(metrics["eval_settings_changed"])
        Console().print(f"written to {shown(metrics['written_to'])} ({why}; the run's own metrics.json is kept)")
    if not metrics["spurious"]:
        Console().print("[yellow]no token types to test: the run was not trained on injected data; pass --source CLASS=SOURCE[/]")


@command("run")
def run_command(
    config: Path = typer.Argument(..., help="YAML run config (data, injection, model, lora, train, eval), base + runs, "
                                  "or a run folder's own config.yaml"),
    overrides: Optional[list[str]] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", parser=out_path, metavar="<path>", help="run folder (a sub-folder per named run)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace runs of another config in --out (only the files ssti wrote)"),
    print_config: bool = typer.Option(False, "--print-config", help="print the resolved run config(s) and exit"),
) -> None:
    """Run a config end to end: inject -> train -> evaluate. Finished runs are skipped, interrupted ones resumed.

    Example: ssti run configs/demo.yaml --out runs/demo lora.rank=8 train.steps=30
    """
    from ssti.config import parse_overrides, resolve_data
    from ssti.errors import SSTIError
    from ssti.pipeline import expand_runs, read_config_file, run_config_file

    parsed = parse_overrides(overrides)
    if print_config:
        _print_configs({name: resolve_data(c) for name, c in expand_runs(read_config_file(config), parsed).items()})
        return
    if out is None:
        raise SSTIError("out: give --out FOLDER for the run (or --print-config to only show the resolved config)")
    from ssti.evaluate import metrics_table

    for name, metrics in run_config_file(config, out, overwrite=overwrite, overrides=parsed).items():
        Console().print(metrics_table(metrics, title=name or str(out)))


@command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", parser=out_path, metavar="<path>", help="where the four runs and table1.md go"),
    overrides: Optional[list[str]] = typer.Argument(None, help=OVERRIDES_HELP + " (applied to all four runs; injection.* "
                                                    "only to the three that inject, e.g. injection.rate=0.25)", show_default=False),
    overwrite: bool = typer.Option(False, "--overwrite", help="redo runs whose config changed"),
) -> None:
    """The main job: reproduce the paper's Table 1 on the embedded default model and dataset (about 10 minutes on 2 CPU cores).

    Example (a quick look on a tiny model): ssti demo --out runs/demo-tiny model.name=tiny-random-llama train.steps=2 eval.max_samples=20
    """
    from rich.markdown import Markdown

    from ssti.config import parse_overrides
    from ssti.demo import run_demo

    text = run_demo(out, overwrite=overwrite, overrides=parse_overrides(overrides))
    Console().print(Markdown(text))
    Console().print(f"written: {out / 'table1.md'}")
