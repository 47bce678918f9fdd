"""Token sources: every built-in, lists, files, callables, and their errors."""

import random
import re

import pytest

from ssti.errors import SSTIError
from ssti.inject.sources import (
    CallableSource, DateSource, TokenSource, get_source, recorded_name, resource_lines,
)


def draws(spec, n=200, seed=0):
    rng = random.Random(seed)
    src = get_source(spec)
    return [src.draw(rng) for _ in range(n)]


def test_date_default_range_and_format():
    values = [d for (d,) in draws("date", 2000)]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in values)
    years = [int(d[:4]) for d in values]
    assert min(years) >= 1100 and max(years) <= 2600
    assert min(years) < 1200 and max(years) > 2500  # spread over the whole range
    assert len(set(values)) > 1900  # drawn afresh each time


def test_date_custom_range():
    years = {int(d[:4]) for (d,) in draws("date:1900-2100", 2000)}
    assert min(years) >= 1900 and max(years) <= 2100
    assert get_source("date:1900-2100").name == "date:1900-2100"
    assert draws("date:2000-2000", 5)[0][0].startswith("2000-")


@pytest.mark.parametrize("spec", ["date:2100-1900", "date:abc", "date:1900", "date:0-5"])
def test_date_bad_ranges(spec):
    with pytest.raises(SSTIError, match="date"):
        get_source(spec)


def test_date_start_after_end_message():
    with pytest.raises(SSTIError, match=r"start 2100 > end 1900"):
        get_source("date:2100-1900")


def test_country_list():
    countries = resource_lines("countries.txt")
    assert 193 <= len(countries) <= 200 and len(set(countries)) == len(countries)
    assert "United States" in countries and "Bosnia and Herzegovina" in countries
    values = {d for (d,) in draws("country", 3000)}
    assert values <= set(countries) and any(" " in v for v in values)


def test_colour_and_alias():
    colours = resource_lines("colours.txt")
    assert 45 <= len(colours) <= 60
    assert {d for (d,) in draws("colour", 500)} <= set(colours)
    assert get_source("color").name == "colour"


def test_html_mixes_pairs_and_singles():
    out = draws("html", 500)
    pairs = [d for d in out if len(d) == 2]
    singles = [d for d in out if len(d) == 1]
    assert pairs and singles
    for open_tag, close_tag in pairs:
        assert re.fullmatch(r"<(\w+)>", open_tag) and close_tag == "</" + open_tag[1:]
    assert all(len(d) == 2 for d in draws("html-pair"))
    assert all(len(d) == 1 and d[0].startswith("<") for d in draws("html-single"))


def test_exclamations_and_fixed():
    assert set(draws("exclamation", 5)) == {("!",)}
    assert set(draws("double-exclamation", 5)) == {("!!",)}
    assert set(draws("fixed:cf", 5)) == {("cf",)}
    assert get_source("fixed:James Bond").draw(random.Random(0)) == ("James Bond",)


def test_list_source():
    assert {d for (d,) in draws("list:good,bad, ugly ")} == {"good", "bad", "ugly"}


def test_file_source(tmp_path):
    path = tmp_path / "items.txt"
    path.write_text("alpha\n\n  beta gamma \n", encoding="utf-8")
    src = get_source(f"file:{path}")
    assert {d for (d,) in draws(src)} == {"alpha", "beta gamma"}
    assert src.name == f"file:{path}"


@pytest.mark.parametrize("spec", ["list:", "list: , ,", "fixed:", "file:"])
def test_empty_sources_rejected(spec):
    with pytest.raises(SSTIError, match=r"source: "):
        get_source(spec)


def test_empty_and_missing_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(SSTIError, match="empty"):
        get_source(f"file:{empty}")
    with pytest.raises(SSTIError, match="not found"):
        get_source(f"file:{tmp_path / 'nope.txt'}")


def test_unknown_source_names_allowed_values():
    with pytest.raises(SSTIError) as e:
        get_source("emoji")
    assert "date" in str(e.value) and "list:a,b,c" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SSTIError):
        get_source("country:fr")  # country takes no argument


def test_callable_and_token_source():
    def shout(rng):
        return rng.choice(["HEY", "YO"])

    src = get_source(shout)
    assert isinstance(src, CallableSource) and src.name.endswith("test_callable_and_token_source.<locals>.shout")
    assert {d for (d,) in draws(shout)} == {"HEY", "YO"}
    with pytest.raises(SSTIError, match="non-empty str"):
        get_source(lambda rng: 3).draw(random.Random(0))

    class Mine(TokenSource):
        name = "mine"

        def draw(self, rng):
            return ("m",)

    mine = Mine()
    assert get_source(mine) is mine
    assert recorded_name(mine).startswith("object:") and recorded_name(DateSource()) == "date"


def test_same_seed_same_draws():
    assert draws("country", 50, seed=3) == draws("country", 50, seed=3)
    assert draws("country", 50, seed=3) != draws("country", 50, seed=4)
