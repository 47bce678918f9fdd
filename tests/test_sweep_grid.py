"""Grid expansion, run ids and the bad inputs of sweep configs."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from ssti.cli import app
from ssti.errors import SSTIError
from ssti.sweep import expand, load_sweep, run_id
from ssti.sweep.grid import check_path, set_path

from _sweep_helpers import tiny_sweep


def test_expansion_counts_order_and_labels(tmp_path):
    sweep = expand(tiny_sweep(tmp_path, ranks=(1, 4, 16), rates=(0.5, 1.0), seeds=(0, 1), variants=True))
    assert len(sweep.runs) == 2 * 3 * 2 * 2  # seeds x ranks x rates x variants
    first = sweep.runs[0]
    assert first.labels == {"train.seed": 0, "injection.seed": 0, "lora.rank": 1, "injection.rate": 0.5, "variant": "light"}
    # zip groups are outermost: the first half of the runs is the whole grid for seed 0
    assert {r.labels["train.seed"] for r in sweep.runs[:12]} == {0}
    # values land in the configs
    agg = [r for r in sweep.runs if r.labels["variant"] == "aggressive"][0]
    assert agg.config.injection.token_fraction == 0.3 and agg.config.lora.rank == 1
    seeds = {(r.config.train.seed, r.config.injection.seed) for r in sweep.runs}
    assert seeds == {(0, 0), (1, 1)}  # zipped, not crossed
    assert len({r.run_id for r in sweep.runs}) == len(sweep.runs)


def test_run_id_is_hash_of_resolved_config_and_stable(tmp_path):
    raw = tiny_sweep(tmp_path)
    a = expand(raw).runs[0]
    assert a.run_id == a.config.run_id() == run_id(a.config)
    # spelling out defaults or reordering keys does not change the id
    raw2 = copy.deepcopy(raw)
    raw2["base"]["lora"] = {"targets": "qv", "dropout": 0.05, "rank": 2}
    raw2["base"]["injection"]["split"] = "train"
    assert expand(raw2).runs[0].run_id == a.run_id
    # any change of a setting is a new run
    raw3 = copy.deepcopy(raw)
    raw3["base"]["train"]["steps"] = 4
    assert expand(raw3).runs[0].run_id != a.run_id
    # and the id does not depend on the process (hash randomisation, import order)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = f"from ssti.sweep import load_sweep; print(load_sweep({str(path)!r}).runs[0].run_id)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": "123"}, check=True)
    assert out.stdout.strip() == load_sweep(path).runs[0].run_id


def test_duplicate_configs_are_one_run(tmp_path):
    raw = tiny_sweep(tmp_path, ranks=(2, 2))
    assert len(expand(raw).runs) == 1


def test_set_path_does_not_mutate():
    base = {"lora": {"rank": 1}}
    out = set_path(base, "lora.rank", 4)
    assert out == {"lora": {"rank": 4}} and base == {"lora": {"rank": 1}}
    assert set_path({}, "eval.sources.fresh", "date") == {"eval": {"sources": {"fresh": "date"}}}


@pytest.mark.parametrize("path, words", [
    ("lora.rnk", ["lora.rnk", "rank", "alpha", "dropout"]),
    ("optimizer", ["data", "injection", "lora", "train"]),
    ("injection.rat", ["rate", "token_fraction", "location"]),
    ("train.seed.x", ["no sub-fields"]),
])
def test_unknown_axis_names_existing_fields(tmp_path, path, words):
    raw = tiny_sweep(tmp_path)
    raw["axes"] = {path: [1, 2]}
    with pytest.raises(SSTIError) as e:
        expand(raw)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words)


def test_dict_fields_accept_any_key():
    check_path("injection.targets.0")
    check_path("eval.sources.fresh")


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r["axes"].update({"lora.rank": []}), "empty"),
    (lambda r: r.update({"zip": [{"train.seed": [0, 1], "injection.seed": [0]}]}), "different lengths"),
    (lambda r: r.update({"variants": {}}), "variants"),
    (lambda r: r.update({"axis": {}}), "unknown key"),
    (lambda r: r["axes"].update({"lora.rank": [-1]}), "lora.rank"),
    (lambda r: r["base"].update({"injection": None}), "the injection is null"),
    (lambda r: r.update({"executor": "slurm"}), "executor"),
    (lambda r: r.update({"workers": 0}), "workers"),
    (lambda r: r.pop("base"), "base"),
])
def test_bad_sweeps_are_one_line_errors(tmp_path, mutate, match):
    raw = tiny_sweep(tmp_path)
    mutate(raw)
    with pytest.raises(SSTIError, match=match) as e:
        expand(raw)
    assert "\n" not in str(e.value)


def test_cli_dry_run_lists_runs_and_bad_axis_exits_2(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(tmp_path, ranks=(1, 4))))
    res = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"], terminal_width=200)
    assert res.exit_code == 0, res.output
    for r in load_sweep(path).runs:
        assert r.run_id in res.output
    assert res.output.count("to run") == 2
    assert not (tmp_path / "out").exists()  # a dry run writes nothing
    bad = tiny_sweep(tmp_path)
    bad["axes"] = {"lora.rnak": [1]}
    path.write_text(yaml.safe_dump(bad))
    res = CliRunner().invoke(app, ["sweep", str(path), "--dry-run"])
    assert res.exit_code == 2 and "lora.rnak" in res.output and "rank" in res.output


def test_several_grids_in_one_sweep(tmp_path):
    """`grids`: each its own axes/zip/variants and `set` overrides, runs labelled by grid, shared runs once."""
    raw = tiny_sweep(tmp_path, ranks=(1, 4), rates=(0.5,), seeds=(0,))
    raw.pop("axes"), raw.pop("zip", None), raw.pop("variants", None)
    raw["grids"] = [{"name": "ranks", "axes": {"lora.rank": [1, 4]}},
                    {"name": "fig1", "set": {"lora.rank": 1}, "axes": {"injection.rate": [0.5, 1.0]}},
                    {"name": "clean", "set": {"injection": None}, "axes": {"lora.rank": [1, 4]}}]
    sweep = expand(raw)
    by_grid = {}
    for r in sweep.runs:
        by_grid.setdefault(r.labels["grid"], []).append(r)
    # fig1's rate-0.5 run is the ranks grid's rank-1 run: run once, under the first grid that made it
    assert len(sweep.runs) == 2 + 1 + 2 and len(by_grid["fig1"]) == 1 and by_grid["fig1"][0].config.injection.rate == 1.0
    assert all(r.config.injection is None for r in by_grid["clean"]) and {r.config.lora.rank for r in by_grid["clean"]} == {1, 4}


@pytest.mark.parametrize("grids,message", [
    ("nope", "grids: expected a non-empty list"),
    ([{"name": "a", "axes": {"lora.rank": [1]}, "colour": 1}], r"grids\[0\]: unknown key\(s\) colour"),
    ([{"name": "a"}, {"name": "a"}], r"grids\[1\]: the name 'a' is used twice"),
    ([{"set": {"lora.rnak": 2}}], r"grids\[0\].set: "),
    ([{"set": "x"}], r"grids\[0\].set: expected a mapping"),
])
def test_bad_grids(tmp_path, grids, message):
    raw = tiny_sweep(tmp_path)
    raw.pop("axes"), raw.pop("zip", None), raw.pop("variants", None)
    raw["grids"] = grids
    with pytest.raises(SSTIError, match=message):
        expand(raw)


def test_grids_refuse_top_level_axes(tmp_path):
    raw = tiny_sweep(tmp_path)
    raw["grids"] = [{"name": "a"}]
    with pytest.raises(SSTIError, match="grids: with `grids`, give axes"):
        expand(raw)


def test_dry_run_estimates_time_from_counted_tokens_and_sharpens_with_finished_runs(tmp_path, monkeypatch):
    import ssti.models.precision as precision
    from ssti.sweep.estimate import DEFAULT_MFU, estimate_sweep

    monkeypatch.setattr(precision, "achieved_mfu", lambda device, model, purpose: None)  # as on a machine where nothing ran yet

    path = tmp_path / "s.yaml"
    raw = tiny_sweep(tmp_path, ranks=(1, 4))
    path.write_text(yaml.safe_dump(raw))
    res = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"], terminal_width=200)
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "est." in flat and "minutes" in flat and "estimate: 2 runs to do, about" in flat
    sweep = load_sweep(path)
    est = estimate_sweep(sweep)
    cost = est.runs[sweep.runs[0].run_id]
    # 3 steps x batch 4 x (tokens per row <= max_length 48); 12 clean + 12 dated test rows
    assert 0 < cost.train_tokens <= 3 * 4 * 48 and 0 < cost.infer_tokens <= 24 * 48
    assert est.mfu["tiny-random-llama"] == DEFAULT_MFU
    # more steps cost more; a finished run's recorded MFU replaces the default
    longer = estimate_sweep(load_sweep({**raw, "base": {**raw["base"], "train": {**raw["base"]["train"], "steps": 30}}}))
    assert next(iter(longer.runs.values())).train_tokens > 9 * cost.train_tokens
    done = [{"run_id": sweep.runs[0].run_id, "config": {"model": {"name": "tiny-random-llama"}},
             "metrics": {"train": {"mfu": 0.05, "peak_flops": 1e11}, "eval_cost": {"flops": 1e9, "seconds": 1.0}}}]
    slower = estimate_sweep(sweep, done)
    assert slower.mfu["tiny-random-llama"] == {"train": 0.05, "infer": 0.01} and slower.done == 1
    assert slower.to_do_seconds == pytest.approx(slower.runs[sweep.runs[1].run_id].seconds)
    # runs of the model on this machine (any sweep) set the default
    monkeypatch.setattr(precision, "achieved_mfu", lambda device, model, purpose: {"train": 0.2, "infer": 0.4}[purpose])
    assert estimate_sweep(sweep).mfu["tiny-random-llama"] == {"train": 0.2, "infer": 0.4}


def test_dry_run_sizes_workers_by_the_memory_finished_runs_used(tmp_path):
    """Each finished run records its process's peak memory; the dry-run says it per model and warns when --workers
    of them would not fit in the machine (a worker killed out of memory cost a grid a day)."""
    from ssti.sweep import run_sweep
    from ssti.sweep.estimate import estimate_sweep
    from ssti.sweep.store import ResultsStore

    sweep = load_sweep(tiny_sweep(tmp_path, ranks=(1,)))
    est = estimate_sweep(sweep)
    assert est.memory_gb == {} and "tiny-random-llama: not measured yet" in est.memory_warning(2, 24.0)
    run_sweep(sweep, tmp_path / "out", show_progress=False)
    with ResultsStore(tmp_path / "out" / "results.sqlite", read_only=True) as store:
        done = store.rows("done")
    gb = done[0]["metrics"]["peak_rss_gb"]
    assert 0.05 < gb < 24  # this test process's peak so far
    est = estimate_sweep(sweep, done)
    assert est.memory_gb == {"tiny-random-llama": gb}
    assert est.memory_warning(1, 1000.0) == f"memory: tiny-random-llama: up to {gb:.1f} GB per worker"
    warning = est.memory_warning(4, gb * 2.5)
    assert "warning: 4 workers need about" in warning and "use --workers 2" in warning
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_sweep(tmp_path, ranks=(1,))))
    res = CliRunner().invoke(app, ["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--dry-run"])
    assert res.exit_code == 0 and "GB per worker" in res.output, res.output


def test_runs_record_the_mfu_they_achieved_for_later_estimates(tmp_path, monkeypatch):
    import torch

    from ssti.models.precision import achieved_mfu, record_mfu

    monkeypatch.setenv("SSTI_CACHE", str(tmp_path / "cache"))
    cpu = torch.device("cpu")
    assert achieved_mfu(cpu, "m", "train") is None
    for v in (0.1, 0.3, 0.2, float("nan"), 0.0):
        record_mfu(cpu, "m", "train", v)
    assert achieved_mfu(cpu, "m", "train") == 0.2 and achieved_mfu(cpu, "m", "infer") is None
    threads = torch.get_num_threads()
    try:  # a sweep's workers at another thread count recorded "n": a dry-run here still uses their figure
        torch.set_num_threads(threads + 1)
        record_mfu(cpu, "n", "train", 0.08)
    finally:
        torch.set_num_threads(threads)
    assert achieved_mfu(cpu, "n", "train") == 0.08


@pytest.mark.parametrize("probe,message", [
    ("yes", "probe: 'yes' is not allowed"),
    ({"colour": 1}, "probe.colour"),
    ({"types": ["nosuch"]}, "source: 'nosuch' is not one of"),
    ({"types": []}, "types: no token type to try"),
    ({"location": "middle"}, "probe.location"),
    ({"max_samples": 0}, "probe.max_samples"),
    ({"alpha": 5}, "probe.alpha"),
    ({"min_effect": "abc"}, "probe.min_effect"),
    ({"seed": -1}, "probe.seed"),
    ({"top_k": 5}, "top_k/max_tokens"),
    ({"search": True, "max_tokens": 100}, "probe.max_tokens"),
])
def test_bad_probe_options(tmp_path, probe, message):
    with pytest.raises(SSTIError, match=message):
        expand(tiny_sweep(tmp_path, probe=probe))


def test_probe_options_become_probe_arguments(tmp_path):
    assert expand(tiny_sweep(tmp_path)).audits == {"scan": False, "probe": None}
    assert expand(tiny_sweep(tmp_path, probe=True)).probe == {}
    assert expand(tiny_sweep(tmp_path, probe={"max_samples": 50, "types": ["date"]})).probe == {"max_samples": 50, "types": ["date"]}


@pytest.mark.parametrize("extra,message", [
    ({"zip": [{"lora.rank": [1, 2]}], "axes": {"lora.rank": [4, 8]}}, "axes: 'lora.rank' is also varied in zip\\[0\\]"),
    ({"axes": {"injection.rate": [0.1, 0.9]}, "variants": {"a": {"injection.rate": 0.5}}}, "variants.a: 'injection.rate' is also varied in axes"),
])
def test_a_field_varied_in_two_places_is_refused(tmp_path, extra, message):
    raw = tiny_sweep(tmp_path)
    raw.pop("zip", None)
    raw.update(extra)
    with pytest.raises(SSTIError, match=message):
        expand(raw)


def test_grid_errors_name_their_grid(tmp_path):
    raw = tiny_sweep(tmp_path)
    raw.pop("axes"), raw.pop("zip", None)
    raw["grids"] = [{"name": "ok", "axes": {"lora.rank": [1]}}, {"name": "clean", "set": {"injection": None}, "axes": {"injection.rate": [0.5]}}]
    with pytest.raises(SSTIError, match=r"grids\[1\] \(clean\): axes: 'injection.rate' varies the injection"):
        expand(raw)
    raw["grids"][1] = {"name": "bad", "zip": [{"lora.rank": [1, 2], "train.seed": [0]}]}
    with pytest.raises(SSTIError, match=r"grids\[1\] \(bad\): zip\[0\]: the lists have different lengths"):
        expand(raw)


def test_another_sweep_into_an_existing_sweep_folder_is_refused(tmp_path):
    from ssti.sweep import run_sweep

    raw = tiny_sweep(tmp_path, ranks=(1,))
    run_sweep(expand(raw), tmp_path / "sw", show_progress=False)
    with pytest.raises(SSTIError, match="holds the sweep 'tiny', not 'other'"):
        run_sweep(expand({**raw, "name": "other"}), tmp_path / "sw", show_progress=False)
    assert run_sweep(expand(raw), tmp_path / "sw", show_progress=False)["skipped"] == 1  # the same sweep again: fine


def test_faults_a_stranger_found_in_sweep_files_are_one_line_errors(tmp_path):
    """Each of these passed silently before: a null step count, true/false as numbers, a key given twice, an unknown
    test-time source, a field both set and varied by a grid, an override the grid then varies, a scalar section."""
    raw = tiny_sweep(tmp_path)
    cases = [
        (lambda r: r["base"]["train"].update(steps=None), "train.steps: null with no epochs"),
        (lambda r: r["axes"].update({"lora.rank": [True, 4]}), "a number, not true"),
        (lambda r: r["base"]["eval"].update(sources={"1": "nosuchsource"}), "eval.sources.1: source: 'nosuchsource'"),
    ]
    for change, message in cases:
        bad = copy.deepcopy(raw)
        change(bad)
        with pytest.raises(SSTIError, match=message) as e:
            expand(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(SSTIError, match="override: lora.rank is varied by the sweep"):
        expand(raw, overrides={"lora.rank": 8})
    with pytest.raises(SSTIError, match="lora.rank: cannot be set inside lora, which holds 4"):
        expand(raw, overrides={"lora": 4})
    grids = {k: v for k, v in copy.deepcopy(raw).items() if k not in ("axes", "zip")}
    grids["grids"] = [{"name": "a", "set": {"lora.rank": 4}, "axes": {"lora.rank": [1, 8]}}]
    with pytest.raises(SSTIError, match=r"grids\[0\] \(a\).set: 'lora.rank' is also varied"):
        expand(grids)
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(raw) + "axes:\n  lora.rank: [16]\n")
    with pytest.raises(SSTIError, match=r"key 'axes' is given twice \(line \d+\)"):
        load_sweep(path)


def test_dry_run_checks_the_out_folder_and_reading_a_store_never_changes_it(tmp_path):
    from ssti.sweep.store import ResultsStore

    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(tiny_sweep(tmp_path)))
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    res = CliRunner().invoke(app, ["sweep", str(cfg), "--dry-run", "--no-estimate", "--out", str(users)])
    assert res.exit_code == 2 and "not written by ssti" in res.output, res.output
    import shutil

    live = tmp_path / "live" / "results.sqlite"
    live.parent.mkdir()
    store = tmp_path / "sw" / "results.sqlite"  # a copy taken while the sweep writes (as a committed store is): rows in its WAL
    store.parent.mkdir()
    with ResultsStore(live, create=True) as s:
        s.conn.execute("PRAGMA wal_autocheckpoint=0")
        s.start("r1", "tiny", {}, {"lora": {"rank": 1}}, "x")
        for name in ("results.sqlite", "results.sqlite-wal"):
            shutil.copy(live.parent / name, store.parent / name)
    before = store.read_bytes()
    for args in (["results", str(store.parent)], ["report", str(store.parent), str(store.parent), "-o", str(tmp_path / "rep")]):
        CliRunner().invoke(app, args)
    assert store.read_bytes() == before
    mine = tmp_path / "mine.csv"  # --overwrite replaces an earlier export, never the user's own file
    mine.write_text("name,score\nx,1\n")
    res = CliRunner().invoke(app, ["results", str(store.parent), "--csv", str(mine), "--overwrite"])
    assert res.exit_code == 2 and "not an earlier ssti results export" in res.output and mine.read_text() == "name,score\nx,1\n"
    ours = tmp_path / "ours.csv"
    for _ in range(2):
        assert CliRunner().invoke(app, ["results", str(store.parent), "--csv", str(ours), "--overwrite"]).exit_code == 0


def test_a_sweep_name_is_never_a_path(tmp_path):
    raw = tiny_sweep(tmp_path)
    for bad in ("../../escape", "/tmp/x", ".."):
        with pytest.raises(SSTIError, match="name: .* is not allowed"):
            expand({**raw, "name": bad})
    assert expand({k: v for k, v in raw.items() if k != "name"}, name="my grid").name == "my-grid"


def test_a_grid_of_more_than_max_runs_is_refused_before_it_is_expanded(tmp_path):
    from ssti.sweep.grid import MAX_RUNS

    raw = tiny_sweep(tmp_path)
    raw["axes"] = {"eval.seed": list(range(1000)), "lora.alpha": list(range(1, 1001))}
    with pytest.raises(SSTIError, match=f"sweep: 1,000,000 runs; at most {MAX_RUNS:,}"):
        expand(raw)
