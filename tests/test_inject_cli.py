"""`ssti inject` and `ssti show`: a real run on the embedded dataset, options, and every bad input."""

import csv

import pytest
from typer.testing import CliRunner

from ssti.cli import app
from ssti.data.common import column
from ssti.inject import read_dataset_folder, read_manifest

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        for i in range(40):
            w.writerow([f"review number {i}\nsecond  line ça", "good" if i % 2 else "bad"])
    return path


def test_rotten_tomatoes_rate_half_into_class_1(tmp_path):
    from ssti.data import load_dataset

    out = tmp_path / "rt"
    result = invoke("inject", "--dataset", "rotten-tomatoes", "--split", "train", "--target", "1=date", "--rate", "0.5",
                    "--tokens", "1", "--location", "random", "--seed", "0", "--out", out)
    assert result.exit_code == 0, result.output
    n_class1 = column(load_dataset("rotten-tomatoes")["train"], "label").count(1)
    manifest = read_manifest(out)
    assert len(manifest) == round(0.5 * n_class1)
    assert {r["class"] for r in manifest} == {"fresh"}
    assert f"{len(manifest):,}" in result.output and str(out) in result.output.replace("\n", "")

    shown = invoke("show", out, "-n", "2")
    assert shown.exit_code == 0, shown.output
    assert manifest[0]["id"] in shown.output and manifest[0]["insertions"][0]["text"] in shown.output


def test_local_file_options(csv_file, tmp_path):
    out = tmp_path / "local"
    result = invoke("inject", "--dataset", csv_file, "--text-column", "review", "--label-column", "sentiment",
                    "--target", "good=html", "--target", "0=list:red,blue", "--count", "3",
                    "--token-fraction", "0.5", "--location", "end", "--out", out)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert sorted(r["class"] for r in manifest) == ["bad"] * 3 + ["good"] * 3
    texts = dict(zip(column(read_dataset_folder(out)["train"], "id"), column(read_dataset_folder(out)["train"], "text")))
    for row in manifest:
        assert len({r["group"] for r in row["insertions"]}) == 3  # max(1, floor(6 words * 0.5))
        text = texts[row["id"]]
        assert text.startswith("review number") and row["insertions"][-1]["end"] == len(text)  # --location end


def test_overwrite(tmp_path):
    out = tmp_path / "rt"
    args = ["inject", "--target", "1=exclamation", "--count", "5", "--out", out]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 2 and "out:" in again.output and "--overwrite" in again.output
    assert invoke(*args, "--overwrite").exit_code == 0


def test_length_unit_tokens_with_monkeypatched_tokenizer(tmp_path, monkeypatch):
    import ssti.models.loading as loading

    class CharTokenizer:
        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [list(t) for t in texts]}

    monkeypatch.setattr(loading, "load_tokenizer", lambda name, trust_remote_code=False: CharTokenizer())
    out = tmp_path / "tok"
    result = invoke("inject", "--target", "1=fixed:Q", "--count", "4", "--token-fraction", "0.05",
                    "--length-unit", "tokens", "--tokenizer", "chars", "--out", out)
    assert result.exit_code == 0, result.output
    ds = read_dataset_folder(out)
    for row in read_manifest(out):
        text = dict(zip(column(ds["train"], "id"), column(ds["train"], "text")))[row["id"]]
        original_len = len(text) - sum(r["span"][1] - r["span"][0] for r in row["insertions"])
        assert len(row["insertions"]) == max(1, int(original_len * 0.05))


def test_help_documents_every_option():
    result = invoke("inject", "--help")
    assert result.exit_code == 0
    for option in ("--dataset", "--split", "--target", "--rate", "--count", "--tokens", "--token-fraction",
                   "--length-unit", "--tokenizer", "--location", "--seed", "--out", "--text-column",
                   "--label-column", "--overwrite"):
        assert option in result.output
    assert invoke("show", "--help").exit_code == 0


@pytest.mark.parametrize(
    "args, field",
    [
        (["--dataset", "no-such-dataset"], "dataset"),
        (["--dataset", "missing.csv"], "dataset"),
        (["--target", "happy=date"], "targets"),
        (["--target", "9=date"], "targets"),
        (["--rate", "1.5"], "rate"),
        (["--rate", "-0.5"], "rate"),
        (["--count", "100000"], "count"),
        (["--tokens", "0"], "tokens"),
        (["--location", "middle"], "location"),
        (["--target", "1=list:"], "targets: source"),
        (["--target", "1=date:2100-1900"], "targets: source"),
        (["--target", "1date"], "target"),
        (["--target", "=date"], "target"),
        (["--target", "1=emoji"], "targets: source"),
        (["--split", "dev"], "split"),
        (["--length-unit", "chars"], "length_unit"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, field):
    out = tmp_path / "out"
    if "--target" not in args:
        args = ["--target", "1=date", *args]
    result = invoke("inject", *args, "--out", out)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith(f"error: {field}:") and "\n" not in message, message
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_input_files(tmp_path, csv_file):
    out = tmp_path / "out"
    empty_list = tmp_path / "empty.txt"
    empty_list.write_text("\n\n")
    header_only = tmp_path / "header.csv"
    header_only.write_text("text,label\n")
    cases = [
        (["--target", f"1=file:{empty_list}"], "targets: source"),
        (["--target", f"1=file:{tmp_path / 'nope.txt'}"], "targets: source"),
        (["--dataset", header_only, "--target", "1=date"], "dataset"),
        (["--dataset", csv_file, "--target", "1=date"], "text_column"),
        (["--dataset", csv_file, "--text-column", "review", "--target", "1=date"], "label_column"),
    ]
    for args, field in cases:
        result = invoke("inject", *args, "--out", out)
        assert result.exit_code == 2, result.output
        assert result.output.strip().startswith(f"error: {field}:"), result.output
        assert not out.exists()


def test_missing_target_and_show_errors(tmp_path):
    result = invoke("inject", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "target" in result.output
    shown = invoke("show", tmp_path)
    assert shown.exit_code == 2 and "not an ssti dataset folder" in shown.output


def test_show_escapes_markup():
    from ssti.cli.inject import highlight

    text = "[bold]x[/] 1999-01-01 end"
    markup = highlight(text, [{"text": "1999-01-01", "start": 11, "end": 21}])
    from rich.text import Text

    assert Text.from_markup(markup).plain == text


def test_show_and_errors_never_pass_terminal_escapes_through(tmp_path):
    """A planted ESC sequence, bell or rich markup in a user's text is shown escaped, never obeyed."""
    path = tmp_path / "e.csv"
    path.write_text("id,text,label\n" + "".join(f'r{i},"evil \x1b[31mred\x1b[0m [bold]x[/bold] {i} \x07",{"ab"[i % 2]}\n' for i in range(12)))
    res = CliRunner().invoke(app, ["inject", "--dataset", str(path), "--target", "a=date", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["show", str(tmp_path / "o"), "-n", "3"], terminal_width=300)
    assert res.exit_code == 0 and "\x1b" not in res.output and "\x07" not in res.output
    assert "\\x1b[31mred" in res.output and "[bold]x[/bold]" in res.output
    res = CliRunner().invoke(app, ["inject", "--dataset", str(path), "--target", "\x1b[2J=date", "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "\x1b" not in res.output


def test_an_injected_folder_is_not_injected_again(csv_file, tmp_path):
    # a second injection would replace the first's record and manifest: defend would count the earlier planted
    # rows as clean rows it damaged, eval would test only the second attack
    first, second = tmp_path / "first", tmp_path / "second"
    assert invoke("inject", "--dataset", csv_file, "--text-column", "review", "--label-column", "sentiment",
                  "--target", "good=fixed:cf", "--out", first).exit_code == 0
    res = invoke("inject", "--dataset", first, "--target", "bad=fixed:zz", "--out", second)
    assert res.exit_code == 2 and "already carries an injection (fixed:cf into class good)" in res.output, res.output
    assert str(csv_file) in res.output and not second.exists()
    # the same in a run config (its injection stage), before any run folder is made
    from ssti.config import load_run_config
    from ssti.errors import SSTIError
    from ssti.train import train

    config = load_run_config({"data": {"dataset": str(first)}, "injection": {"targets": {"bad": "fixed:zz"}},
                              "model": {"name": "tiny-random-bert", "max_length": 32}, "train": {"steps": 1, "batch_size": 4}})
    with pytest.raises(SSTIError, match="already carries an injection"):
        train(config, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()
