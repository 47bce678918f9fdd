"""`ssti train`, `ssti eval`, `ssti run` and `ssti demo`: thin layers over the Python API."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ssti.cli import command


@command("train")
def train_command(
    data: str = typer.Option(..., "--data", help="named dataset, ssti folder (e.g. from `ssti inject`), or csv/jsonl/parquet file"),
    out: Path = typer.Option(..., "--out", help="run folder to write"),
    model: str = typer.Option("smollm2-135m", "--model", help="registry name (`ssti models`), Hugging Face id or local folder"),
    head: str = typer.Option("classifier", "--head", help="classifier | paper | verbalizer"),
    rank: int = typer.Option(8, "--rank", help="LoRA rank; 0 = full fine-tuning"),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="LoRA alpha (default: = rank, as in the paper)"),
    alpha_ratio: Optional[float] = typer.Option(None, "--alpha-ratio", help="alpha = ratio x rank"),
    dropout: float = typer.Option(0.05, "--dropout", help="LoRA dropout"),
    targets: str = typer.Option("attention", "--targets", help="attention | qv | all-linear | comma-separated module names"),
    steps: Optional[int] = typer.Option(100, "--steps", help="optimizer steps"),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="passes over the training split (instead of --steps)"),
    batch_size: int = typer.Option(16, "--batch-size", help="global batch size"),
    micro_batch_size: Optional[int] = typer.Option(None, "--micro-batch-size", help="per forward pass; gradients accumulate"),
    lr: float = typer.Option(1e-3, "--lr", help="peak learning rate"),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw | adafactor"),
    weight_decay: float = typer.Option(0.0, "--weight-decay", help="weight decay"),
    warmup_ratio: float = typer.Option(0.05, "--warmup-ratio", help="warm-up fraction of the steps"),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="max gradient norm"),
    precision: str = typer.Option("auto", "--precision", help="auto | bf16 | fp32"),
    max_length: int = typer.Option(256, "--max-length", help="truncate texts to this many tokens"),
    seed: int = typer.Option(0, "--seed", help="seed of batch order and initialisation"),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", help="checkpoint every N steps (0: never)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="'paper': the authors' hyper-parameters (overrides the options above)"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in --out"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run in --out"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="allow models that run their own code (OpenELM)"),
    text_column: str = typer.Option("text", "--text-column", help="text column of a local file"),
    label_column: str = typer.Option("label", "--label-column", help="label column of a local file"),
) -> None:
    """Fine-tune a LoRA classifier on a dataset and write a run folder (config, adapter, logs, metrics)."""
    from ssti.config import LoraSpec, ModelSpec, TrainSpec, apply_preset, validate
    from ssti.train import train

    cfg = apply_preset({
        "model": {"name": model, "head": head, "max_length": max_length, "trust_remote_code": trust_remote_code},
        "lora": {"rank": rank, "alpha": alpha, "alpha_ratio": alpha_ratio, "dropout": dropout, "targets": targets},
        "train": {"optimizer": optimizer, "lr": lr, "weight_decay": weight_decay, "warmup_ratio": warmup_ratio,
                  "batch_size": batch_size, "micro_batch_size": micro_batch_size, "steps": None if epochs else steps,
                  "epochs": epochs, "grad_clip": grad_clip, "seed": seed, "precision": precision, "checkpoint_every": checkpoint_every},
    }, preset)
    result = train(data, out, validate(ModelSpec, cfg["model"], "model"), validate(LoraSpec, cfg["lora"], "lora"),
                   validate(TrainSpec, cfg["train"], "train"), resume=resume, overwrite=overwrite,
                   text_column=text_column, label_column=label_column)
    Console().print(f"[green]trained[/] {result.steps} steps, final loss {result.final_loss:.4f}, "
                    f"{result.tokens_per_second:.0f} real tokens/s -> {result.run_dir}")


@command("eval")
def eval_command(
    run_dir: Path = typer.Argument(..., help="a run folder written by `ssti train` or `ssti run`"),
    source: Optional[list[str]] = typer.Option(None, "--source", help="CLASS=SOURCE: test-time token type per target class (repeatable; default: the run's training types)"),
    location: Optional[str] = typer.Option(None, "--location", help="beginning | end | random (default: the training injection's)"),
    split: str = typer.Option("test", "--split", help="split to evaluate"),
    max_samples: Optional[int] = typer.Option(None, "--max-samples", help="stratified subsample of the split"),
    batch_size: int = typer.Option(32, "--batch-size", help="inference batch"),
    seed: int = typer.Option(0, "--seed", help="seed of the test-time token draws"),
) -> None:
    """Evaluate a run: clean accuracy and, per token type, predicted-class counts and attack success on a
    test set where every sample carries the token. Writes metrics.json in the run folder."""
    from ssti.evaluate import evaluate_run, metrics_table

    from ssti.inject.cli import parse_targets

    metrics = evaluate_run(run_dir, sources=parse_targets(source, "source") if source else None, location=location, split=split,
                           batch_size=batch_size, seed=seed, max_samples=max_samples)
    Console().print(metrics_table(metrics, title=str(run_dir)))
    if not metrics["spurious"]:
        Console().print("[yellow]no token types to test: the run was not trained on injected data; pass --source CLASS=SOURCE[/]")


@command("run")
def run_command(
    config: Path = typer.Argument(..., help="YAML run config (data, injection, model, lora, train, eval), or base + runs"),
    out: Path = typer.Option(..., "--out", help="run folder (a sub-folder per named run)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace runs of another config in --out"),
) -> None:
    """Run a config end to end: inject -> train -> evaluate. Finished runs are skipped, interrupted ones resumed."""
    from ssti.evaluate import metrics_table
    from ssti.pipeline import run_config_file

    for name, metrics in run_config_file(config, out, overwrite=overwrite).items():
        Console().print(metrics_table(metrics, title=name or str(out)))


@command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="where the four runs and table1.md go"),
    steps: Optional[int] = typer.Option(None, "--steps", help="training steps per run (default: configs/demo.yaml)"),
    rank: Optional[int] = typer.Option(None, "--rank", help="LoRA rank"),
    model: Optional[str] = typer.Option(None, "--model", help="backbone"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="dataset"),
    rate: Optional[float] = typer.Option(None, "--rate", help="proportion of class 1 injected in the seamless run"),
    eval_samples: Optional[int] = typer.Option(None, "--eval-samples", help="test samples per evaluation set"),
    overwrite: bool = typer.Option(False, "--overwrite", help="redo runs whose config changed"),
) -> None:
    """The main job: reproduce the paper's Table 1 on the embedded default model and dataset (about 10 minutes on 2 CPU cores)."""
    from rich.markdown import Markdown

    from ssti.demo import run_demo

    text = run_demo(out, overwrite=overwrite, steps=steps, rank=rank, model=model, dataset=dataset, rate=rate, eval_samples=eval_samples)
    Console().print(Markdown(text))
    Console().print(f"written: {out / 'table1.md'}")
