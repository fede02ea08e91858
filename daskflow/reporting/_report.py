"""``report.html``: one self-contained page per run (no server, no network, no JavaScript).

Everything the page shows is inside it: the plots are embedded as base64 PNG data URIs,
the styles inline. It is built from plain data — the run's metrics dictionary, the
resolved config text and a list of PNG files — so it needs nothing but the standard library.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_report"]

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;
color:#1d1d1f;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.25rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem;margin-top:2rem} .meta{color:#555}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem;max-width:100%} th,td{border:1px solid #ddd;
padding:.25rem .5rem;text-align:right;overflow-wrap:anywhere} th{background:#f5f5f7}
td:first-child,th:first-child{text-align:left;overflow-wrap:normal}
tr.chosen td,th.chosen{background:#e3f1e3;font-weight:600}
p.note{color:#555;font-size:.9rem;max-width:60rem}
pre{background:#f5f5f7;padding:.8rem;overflow:auto;font-size:.8rem}
figure{display:inline-block;margin:.5rem;vertical-align:top} figure img{max-width:520px;
border:1px solid #eee} figcaption{font-size:.85rem;color:#555;text-align:center}
"""

#: Caption of each plot the runner writes, by file stem.
_CAPTIONS = {
    "ranking_metrics": "Ranking metrics vs cut-off k, per model and split",
    "als_loss": "ALS training loss per iteration",
    "roc": "ROC curves on the test users",
    "gains": "Targeting curve: share of conversions kept vs share of users targeted",
    "calibration": "Calibration: observed conversion rate vs predicted probability",
    "sgd_convergence": "SGD convergence: objective per iteration for several step sizes",
    "tuning_heatmap": "Validation metric over the two tuned hyperparameters",
    "precision_recall": "Precision-recall curves on the test rows",
    "kpis_active_users": "Daily active users (kpis stage)",
    "kpis_retention": "Retention by cohort (kpis stage)",
    "kpis_funnel": "Funnels: share of users reaching each step (kpis stage)",
    "abtest_forest": "A/B test: each metric's difference with its confidence interval",
}
#: A table with more columns than this is shown transposed (one column per row), so that
#: it fits the page instead of running off its right edge.
_MAX_COLUMNS = 9
_CHOSEN = ' class="chosen"'


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, list | dict):
        return html.escape(json.dumps(value, default=str))
    return html.escape(str(value))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
           marked: int | None = None) -> str:
    """An HTML table of ``rows``; row ``marked`` highlighted. Wide tables come transposed."""
    if not rows:
        return "<p>(none)</p>"
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    if len(columns) > _MAX_COLUMNS and len(rows) < len(columns):
        return _transposed(rows, columns, marked)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(f"<tr{_CHOSEN if i == marked else ''}>"
                   + "".join(f"<td>{_format(row.get(c, ''))}</td>" for c in columns) + "</tr>"
                   for i, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _transposed(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], marked: int | None) -> str:
    """Rows as columns: the first column's values head them, every other column is a row."""
    first, *rest = columns
    head = f"<th>{html.escape(str(first))}</th>" + "".join(
        f"<th{_CHOSEN if i == marked else ''}>{_format(row.get(first, ''))}</th>"
        for i, row in enumerate(rows))
    body = "".join(f"<tr><td>{html.escape(str(c))}</td>"
                   + "".join(f"<td>{_format(row.get(c, ''))}</td>" for row in rows) + "</tr>" for c in rest)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key_values(data: Mapping[str, Any]) -> str:
    rows = [{"": key, "value": value} for key, value in data.items()
            if not isinstance(value, dict | list) or len(json.dumps(value, default=str)) < 200]
    return _table(rows)


def _image(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    stem = path.stem
    caption = _CAPTIONS.get(stem) or (f"Tuning: validation metric vs {stem.removeprefix('tuning_')}"
                                      if stem.startswith("tuning_") else stem.replace("_", " "))
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _recommender_sections(metrics: Mapping[str, Any]) -> list[str]:
    parts = []
    if "interactions" in metrics:
        parts += ["<h3>Interaction matrix</h3>", _key_values(metrics["interactions"])]
    if "model" in metrics:
        model = {k: v for k, v in metrics["model"].items() if k not in ("loss_curve", "iteration_seconds")}
        parts += ["<h3>Recommender</h3>", _key_values(model)]
    evaluation = metrics.get("evaluation")
    if evaluation:
        rows = [{"model": name, "split": split, **{k: v for k, v in scores.items() if k != "holdout"}}
                for name, splits in evaluation.items() for split, scores in splits.items()]
        parts += ["<h3>Ranking metrics (leave-k-out)</h3>", _table(rows)]
    tune = metrics.get("tune")
    if tune and tune.get("target") == "recommender":
        summary = {k: v for k, v in tune.items() if k != "test"}
        rows = [{"model": f"{tune['model']} ({'tuned' if which == 'tuned' else 'default parameters'})",
                 "split": split, **{k: v for k, v in scores.items() if k not in ("holdout", "params")}}
                for split, pair in tune.get("test", {}).items() for which, scores in pair.items()]
        parts += ["<h3>Tuning (validation folds from the training part only)</h3>", _key_values(summary),
                  "<h3>Default and tuned models on the same test holdout</h3>",
                  '<p class="note">Both fitted on the evaluation split\'s training part; the held-out '
                  "interactions were scored once, here, and never seen by the tuning.</p>", _table(rows)]
    cold = metrics.get("cold_start")
    if cold:
        rows = [{"scorer": name, **scores} for name, scores in cold["scorers"].items()]
        rows.append({"scorer": f"gap closed (content vs {cold['baseline']} -> true_factors)",
                     **cold["gap_closed"]})
        summary = {k: v for k, v in cold.items() if k not in ("scorers", "gap_closed")}
        parts += ["<h3>Cold items (held out entirely)</h3>", _key_values(summary), _table(rows)]
    if "predict" in metrics:
        predict = dict(metrics["predict"])
        examples = predict.pop("examples", None)
        parts += ["<h3>Recommendations</h3>", _key_values(predict)]
        if examples:
            parts += ["<p class=\"note\">A few users' recommendations, best first (with the item names "
                      "when an item table gives them):</p>", _table(examples)]
    return parts


def _interval(bounds: Any) -> str:
    if isinstance(bounds, list | tuple) and len(bounds) == 2:
        return f"{bounds[0]:.3f} – {bounds[1]:.3f}"
    return ""


def _population_note(classify: Mapping[str, Any]) -> str:
    """One sentence saying which rows the models learned from and which they were tested on."""
    split = classify.get("split", {})
    train, test = split.get("train_rows"), split.get("test_rows")
    if train is None or test is None:
        return ""
    words = (f"The models were fitted on {_format(train)} training rows and every figure below is "
             f"measured on {_format(test)} test rows they never saw")
    if split.get("by"):
        words += f"; split by {html.escape(str(split['by']))}"
    return f'<p class="note">{words}.</p>'


def _classify_sections(metrics: Mapping[str, Any]) -> list[str]:
    classify = metrics.get("classify")
    if not classify:
        return []
    parts = []
    if "population" in classify:
        parts += ["<h3>Entity table</h3>", _key_values(classify["population"])]
    parts.append(_population_note(classify))
    models = classify.get("models", {})
    chosen = (classify.get("score") or {}).get("model")
    if models:
        rows = []
        for name, result in models.items():
            gains = result.get("gains") or {}
            intervals = result.get("intervals") or {}
            row = {"model": f"{name} (chosen)" if name == chosen else name, "classifier": result.get("model"),
                   "fit s": result.get("fit_seconds", ""), "ROC AUC": result.get("roc_auc")}
            if intervals.get("roc_auc"):
                row[f"ROC AUC {intervals['level']:.0%} CI"] = _interval(intervals["roc_auc"])
            row |= {"PR AUC": result.get("pr_auc"), "log loss": result.get("log_loss"),
                    "Brier": result.get("brier")}
            for share, kept, lift in zip(gains.get("share_targeted", []), gains.get("share_kept", []),
                                         gains.get("lift", []), strict=False):
                row[f"kept@{share:.0%}"] = kept
                if intervals.get(f"kept@{share * 100:g}%"):
                    row[f"kept@{share:.0%} CI"] = _interval(intervals[f"kept@{share * 100:g}%"])
                row[f"lift@{share:.0%}"] = lift
            rows.append(row)
        marked = list(models).index(chosen) if chosen in models else None
        parts += ["<h3>Classifiers on the test rows</h3>", _table(rows, marked=marked)]
        parts += _chosen_model_details(models.get(chosen) if chosen else None, chosen)
    if "tune" in metrics and metrics["tune"].get("target") != "recommender":
        parts += ["<h3>Tuning</h3>", _key_values(metrics["tune"])]
    if "score" in classify:
        parts += ["<h3>Scoring every entity</h3>", _key_values(classify["score"])]
    return parts


def _chosen_model_details(result: Mapping[str, Any] | None, name: str | None) -> list[str]:
    """The scoring model's deciles and its strongest features, when the run measured them."""
    if not result:
        return []
    parts = []
    deciles = result.get("deciles")
    if deciles:
        rows = [{"decile": int(d), "rows": c, "positives": p, "rate": r, "lift": lift}
                for d, c, p, r, lift in zip(deciles["decile"], deciles["count"], deciles["positives"],
                                            deciles["rate"], deciles["lift"])]
        parts += [f"<h3>{html.escape(str(name))} by decile of score (1 = highest)</h3>", _table(rows)]
    features = result.get("top_features")
    if features:
        parts += [f"<h3>{html.escape(str(name))}: the strongest features</h3>",
                  f'<p class="note">{html.escape(features[0].get("meaning", ""))}</p>' if features else "",
                  _table([{k: v for k, v in f.items() if k != "meaning"} for f in features])]
    return parts


def write_report(path: str | Path, metrics: Mapping[str, Any], *, config_text: str = "",
                 plots: Sequence[str | Path] = (), title: str | None = None) -> Path:
    """Write the self-contained HTML report of a run and return its path.

    Parameters
    ----------
    path : path of the ``.html`` file to write
    metrics : the run's metrics (what ``metrics.json`` holds)
    config_text : the resolved configuration (YAML), shown verbatim
    plots : PNG files to embed, in order
    title : page title; default from the experiment name and run id
    """
    path = Path(path)
    name = metrics.get("experiment", "daskflow run")
    title = title or f"{name} — run {metrics.get('run_id', '')}"
    link = metrics.get("dashboard_link")
    meta = [f"daskflow {html.escape(str(metrics.get('daskflow_version', '')))}",
            f"stages: {html.escape(' → '.join(metrics.get('stages', [])))}",
            f"wall time: {_format(metrics.get('wall_time_s', ''))} s"]
    if link:
        meta.append(f'Dask dashboard (while the run was live): <a href="{html.escape(link)}">'
                    f"{html.escape(link)}</a>")
    timings = [{"stage": stage, "seconds": seconds}
               for stage, seconds in metrics.get("timings_s", {}).items()]
    body = [f"<h1>{html.escape(title)}</h1>", f'<p class="meta">{" · ".join(meta)}</p>',
            "<h2>Timings per stage</h2>", _table(timings)]
    if "data" in metrics:
        body += ["<h2>Data</h2>", _key_values(metrics["data"])]
    sections = _recommender_sections(metrics)
    if sections:
        body += ["<h2>Recommender</h2>", *sections]
    sections = _classify_sections(metrics)
    if sections:
        body += ["<h2>Classifier</h2>", *sections]
    images = [Path(p) for p in plots]
    if images:
        body += ["<h2>Plots</h2>", *(_image(p) for p in images)]
    if config_text:
        body += ["<h2>Configuration</h2>", f"<pre>{html.escape(config_text)}</pre>"]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
