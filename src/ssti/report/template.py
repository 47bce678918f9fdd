"""The report page's jinja2 template: one self-contained HTML file, readable at a laptop's width."""

from jinja2 import Environment, select_autoescape

_SOURCE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
  body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; margin: 0; background: #f6f7f9; }
  main { max-width: 1120px; margin: 0 auto; padding: 18px 22px 48px; background: #fff; }
  h1 { font-size: 1.5em; margin: 0.2em 0 0.3em; }
  h2 { font-size: 1.15em; margin: 1.6em 0 0.5em; border-bottom: 1px solid #dde1e7; padding-bottom: 4px; }
  .meta { color: #5a6170; font-size: 0.92em; }
  nav a { margin-right: 14px; font-size: 0.92em; }
  figure { margin: 0.6em 0 0; }
  figure img { max-width: 100%; height: auto; border: 1px solid #e4e7ec; }
  figcaption { color: #444b59; font-size: 0.92em; margin-top: 4px; }
  .scroll { overflow-x: auto; }
  table { border-collapse: collapse; font-size: 0.88em; margin: 0.4em 0; }
  th, td { border: 1px solid #dde1e7; padding: 4px 8px; text-align: left; vertical-align: top; }
  th { background: #eef1f5; }
  tr:nth-child(even) td { background: #fafbfc; }
  details { margin: 6px 0 0; font-size: 0.88em; }
  pre { background: #f3f4f7; padding: 8px 10px; overflow-x: auto; max-height: 340px; }
  .note { color: #5a6170; font-size: 0.9em; }
  .missing { color: #8a5a00; }
</style>
</head>
<body><main>
<h1>{{ title }}</h1>
<p class="meta">{{ n_runs }} finished runs{% if unfinished %} ({{ unfinished }} not finished yet, left out){% endif %}{% if failed %} ({{ failed }} failed, left out: `ssti results --status failed` shows why){% endif %}{% if stale %} ({{ stale }} stale, left out: finished under an earlier version of the sweep config or its data; `ssti results --status stale` lists them){% endif %} from
<code>{{ source }}</code>; model{{ 's' if models|length > 1 }} {{ models|join(', ') }}; dataset{{ 's' if datasets|length > 1 }}
{{ datasets|join(', ') }}. Written {{ when }} by ssti {{ version }}. Every run: <a href="runs.csv">runs.csv</a>.</p>
<nav>{% for t in tables %}<a href="#{{ t.table.id }}">{{ t.table.id }}</a>{% endfor %}{% for f in figures %}<a href="#{{ f.id }}">{{ f.id }}</a>{% endfor %}</nav>

{% macro table_section(t) %}{% set tab = t.table %}
<h2 id="{{ tab.id }}">{{ t.title }}</h2>
<div class="scroll"><table data-table="{{ tab.id }}">
<thead><tr>{% for h in tab.header %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in tab.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table></div>
{% if not tab.rows %}<p class="missing">No rows: {{ tab.empty or "nothing to show for these runs" }}.</p>{% endif %}
<p class="note">{{ t.note }}</p>
{% endmacro %}

{% for t in tables[:2] %}{{ table_section(t) }}{% endfor %}

{% for f in figures %}
<h2 id="{{ f.id }}">{{ f.title }}</h2>
{% if f.files %}
<figure data-figure="{{ f.id }}">
<img src="{{ f.files.png }}" alt="{{ f.title }}">
<figcaption>{{ f.caption }} <a href="{{ f.files.svg }}">SVG</a></figcaption>
</figure>
{% else %}
<p class="missing" data-figure-missing="{{ f.id }}">Not drawn: {{ f.missing }}.</p>
{% endif %}
<details><summary>config that produced this figure</summary><pre>{{ f.config }}</pre></details>
{% endfor %}

{% for t in tables[2:] %}{{ table_section(t) }}{% endfor %}

<h2 id="config">Config</h2>
<pre>{{ config }}</pre>
</main></body>
</html>
"""

TEMPLATE = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string(_SOURCE)
