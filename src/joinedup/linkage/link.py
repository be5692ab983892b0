"""``link``: train, predict, cluster, propagate opt-outs and write record_person.

Reads ``DATA/pseudonymised/<source>/<record table>.parquet`` (encodings only)
and writes to ``DATA/linked/``:

* ``record_person.parquet`` - source, record_token, person_id for every surviving record;
* ``model.json`` - the trained Splink model (reusable with ``--linkage-model``);
* ``person_ids.parquet`` - the register of every person_id ever issued (never reused);
* ``charts/`` - match weights, m/u parameters, sample waterfalls, cluster studio;
* ``summary.json`` - the figures of the run.

and ``DATA/restricted/linkage_opted_out_records.parquet`` (source, record_token):
records with no NHS number, or one no other record of their person confirms, that
match an opted-out person (see ``_propagate_opt_outs``). They are left
out of record_person here; the next stage, ``joinedup.linkage.remove_linked_opt_outs``,
removes them with all their rows from ``pseudonymised/`` and counts them in the ledger.

Splink runs on DuckDB (default) or Spark (``JOINEDUP_LINKAGE_BACKEND``; see
``backend.py``): the same model, the same outputs, written by the code below.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from splink import Linker

from joinedup import catalogue
from joinedup.atomic import atomic_path, write_parquet, write_text
from joinedup.catalogue import LINKAGE_OPTED_OUT_RECORDS, RECORD_TABLES
from joinedup.deidentify.encodings import key_fingerprint
from joinedup.linkage.backend import (
    BackendName,
    LinkageBackend,
    LinkageError,
    numbered_records_sql,
    open_backend,
)
from joinedup.linkage.incremental import (
    FINGERPRINTS,
    FINGERPRINTS_AT_FULL,
    NEW_FLAG,
    Delta,
    delta,
    drift,
    incremental_clusters,
    read_state,
    record_fingerprints,
    schedule,
    write_state,
)
from joinedup.linkage.inputs import KeyMismatchError, remove_linkage_inputs, write_linkage_inputs
from joinedup.linkage.model import DEFAULT_MODEL_DIR, LinkageModel, load_model
from joinedup.linkage.nhs_number_split import split_on_nhs_numbers
from joinedup.linkage.person_ids import assign_person_ids
from joinedup.linkage.training import choose_training
from joinedup.settings import Settings

log = logging.getLogger(__name__)

LINKED = catalogue.LINKED.path

__all__ = ["LINKED", "LinkageError", "link", "linked_dir"]


def linked_dir(data_dir: Path) -> Path:
    return Path(data_dir) / LINKED


def _train(linker: Linker, training: dict[str, Any], u_chunks: int | None = None) -> None:
    prior = training["prior"]
    linker.training.estimate_probability_two_random_records_match(
        prior["deterministic_rules"], recall=prior["recall"]
    )
    u = training["u"]
    chunks = {} if u_chunks is None else {"num_chunks": u_chunks}
    linker.training.estimate_u_using_random_sampling(
        max_pairs=u["max_pairs"], seed=u["seed"], **chunks
    )
    em = training.get("em", {})
    for rule in training["em_blocking_rules"]:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, max_pairs=em.get("max_pairs")
        )


# Why a record is scored against the opted-out people (summary.json counts each).
NO_NHS_NUMBER = "no_nhs_number"
UNCONFIRMED_NHS_NUMBER = "unconfirmed_nhs_number"


def _opt_out_candidates(backend: LinkageBackend, clusters: pl.DataFrame) -> None:
    """Table ``opt_out_origin``: the records to score against the opted-out people, and why.

    Opt-outs by NHS number at ingest removed every record carrying an opted-out person's
    number, so a record of theirs left here carries no number, or a wrong one: a keying
    error that is still a valid number (belonging to nobody, or to someone else). A wrong
    number is one no other record of its linked person confirms: it is not its cluster's
    prevailing number (carried by the most records), or no other record of the cluster
    carries it. A number two records of one person agree on is taken as right: two
    independent keying errors rarely make the same number, and had it been the opted-out
    person's it would have gone at ingest.
    """
    backend.register_frame("opt_out_clusters", clusters)
    union = numbered_records_sql()
    backend.create_table(
        "opt_out_numbers",
        f"""
        SELECT r.source, r.record_token, r.nhs_number_token,
               count(*) OVER (PARTITION BY c.cluster_id, r.nhs_number_token) AS carried
        FROM ({union}) r
        JOIN opt_out_clusters c ON c.source = r.source AND c.record_token = r.record_token
        WHERE r.nhs_number_token IS NOT NULL
        """,
    )
    backend.create_table(
        "opt_out_origin",
        f"""
        SELECT source, record_token, '{NO_NHS_NUMBER}' AS why
        FROM ({union}) r WHERE nhs_number_token IS NULL
        UNION ALL
        SELECT n.source, n.record_token, '{UNCONFIRMED_NHS_NUMBER}' AS why
        FROM opt_out_numbers n
        JOIN opt_out_clusters c ON c.source = n.source AND c.record_token = n.record_token
        JOIN (
            SELECT c2.cluster_id, max(n2.carried) AS prevailing
            FROM opt_out_numbers n2
            JOIN opt_out_clusters c2
              ON c2.source = n2.source AND c2.record_token = n2.record_token
            GROUP BY c2.cluster_id
        ) p ON p.cluster_id = c.cluster_id
        WHERE n.carried < 2 OR n.carried < p.prevailing
        """,
    )


def _propagate_opt_outs(
    backend: LinkageBackend, trained: dict[str, Any], threshold: float, clusters: pl.DataFrame
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Records of opted-out people that ingest could not find by NHS number.

    The national list and type 1 objections are applied by NHS number at ingest; a
    record of an opted-out person with no number or a wrong one (see
    :func:`_opt_out_candidates`) is caught here, by scoring it with the trained model
    against the restricted encodings of the people who opted out, on names, date of
    birth, postcode and sex: its NHS number is left out of the comparison (it is
    absent, or not the person's), so a wrong number can neither hide nor reveal them.

    Precision: a candidate with a number of its own must also agree, at a level the
    model weighs as evidence of a match, on the given name and on the date of birth
    (exact, swapped, or one of year, month and day wrong). With the number's evidence gone the model
    alone would take a twin (same family name, birth date and address) or a namesake at
    the same address for the opted-out person, and that person has a number of their
    own that says otherwise. Returns (source, record_token) of the matched records and
    how many records were scored, by why.
    """
    _opt_out_candidates(backend, clusters)
    others = [
        c
        for c in backend.columns("records_gp")
        if c not in ("source", "nhs_number_token", NEW_FLAG)  # the flag: incremental's
    ]
    union = " UNION ALL ".join(f"SELECT * FROM records_{s}" for s in RECORD_TABLES)
    # One dataset name for all candidates: Splink's link_only compares across values
    # of the source column, and candidates need only be compared with opted-out people.
    backend.create_table(
        "opt_out_candidates",
        f"""
        SELECT 'candidates' AS source, CAST(NULL AS STRING) AS nhs_number_token,
               {", ".join(f"r.{c}" for c in others)}
        FROM ({union}) r JOIN opt_out_origin o
          ON o.source = r.source AND o.record_token = r.record_token
        """,
    )
    scored = dict(
        backend.frame("SELECT why, count(*) AS n FROM opt_out_origin GROUP BY why").iter_rows()
    )
    n_opted = backend.count("opted_out")
    empty = pl.DataFrame(schema={"source": pl.String, "record_token": pl.String})
    if not scored or n_opted == 0:
        return empty, scored
    settings = copy.deepcopy(trained)
    settings["link_type"] = "link_only"
    settings.pop("linker_uid", None)
    settings["retain_intermediate_calculation_columns"] = True  # the mw_ weights below
    linker = backend.linker(
        {"opt_out_candidates": "candidates", "opted_out": "opted_out"}, settings
    )
    pairs = linker.inference.predict(threshold_match_probability=threshold)
    cand = "CASE WHEN p.source_l = 'candidates' THEN p.record_token_l ELSE p.record_token_r END"
    # mw_ columns are the match weights of the model's own comparison levels: above 0 the
    # model counts the level as evidence of a match (a missing value weighs 0).
    removed = backend.frame(
        f"""
        SELECT DISTINCT c.source, c.record_token
        FROM {pairs.physical_name} p
        JOIN opt_out_origin c ON c.record_token = {cand}
        WHERE (p.source_l = 'candidates') <> (p.source_r = 'candidates')
          AND (c.why = '{NO_NHS_NUMBER}'
               OR (p.mw_given_name > 0 AND p.mw_date_of_birth > 0))
        ORDER BY 1, 2
        """,
    )
    return removed, scored


def _sample_linker(
    backend: LinkageBackend, trained: dict[str, Any], clusters: pl.DataFrame, size: int = 12
) -> Linker:
    """A linker over a few clusters' records that keeps every intermediate column.

    The full run drops comparison columns to stay within memory at a million
    people; the review charts (waterfalls, cluster studio) need them, so they are
    drawn from the largest clusters (where mistakes show) re-scored here.
    """
    biggest = (
        clusters.group_by("cluster_id")
        .len()
        .sort(["len", "cluster_id"], descending=[True, False])
        .head(size)
    )
    backend.register_frame(
        "sample_tokens", clusters.join(biggest, on="cluster_id").select("record_token")
    )
    settings = copy.deepcopy(trained)
    settings.pop("linker_uid", None)
    settings["retain_matching_columns"] = True
    settings["retain_intermediate_calculation_columns"] = True
    for source in RECORD_TABLES:
        backend.create_table(
            f"sample_{source}",
            f"SELECT * FROM records_{source} "
            "WHERE record_token IN (SELECT record_token FROM sample_tokens)",
        )
    return backend.linker({f"sample_{s}": s for s in RECORD_TABLES}, settings)


_REMOTE_FONT = re.compile(r'<link [^>]*href="https://fonts\.(googleapis|gstatic)\.com[^>]*>\n?')


def _charts(
    linker: Linker,
    backend: LinkageBackend,
    trained: dict[str, Any],
    clusters: pl.DataFrame,
    threshold: float,
    out: Path,
) -> list[str]:
    """Splink's charts for people to review the model; failures here never fail a run."""
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(name: str, chart) -> None:
        # Inline: Splink's vega, vega-lite and vega-embed bundled into the page. By default
        # the page loads them from a CDN, and a secure data environment has no internet.
        write_text(chart.to_html(inline=True), out / name)
        written.append(name)

    try:
        save("match_weights.html", linker.visualisations.match_weights_chart())
        save("m_u_parameters.html", linker.visualisations.m_u_parameters_chart())
        sample = _sample_linker(backend, trained, clusters)
        predictions = sample.inference.predict()
        save(
            "waterfall_sample.html",
            sample.visualisations.waterfall_chart(predictions.as_record_list(limit=20)),
        )
        sample_clusters = sample.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=threshold
        )
        with atomic_path(out / "cluster_studio.html") as tmp:
            sample.visualisations.cluster_studio_dashboard(
                predictions, sample_clusters, str(tmp), sample_size=12, overwrite=True
            )
            # Its scripts are bundled, but its template asks Google for a web font: with no
            # internet the request hangs until it fails. The page's own fallback font serves.
            tmp.write_text(_REMOTE_FONT.sub("", tmp.read_text(encoding="utf-8")), encoding="utf-8")
        written.append("cluster_studio.html")
    except Exception as exc:
        log.warning("could not write linkage charts: %s", exc)
    return written


def _cluster_figures(record_person: pl.DataFrame) -> dict[str, Any]:
    per_person = record_person.group_by("person_id").agg(
        pl.len().alias("records"), pl.col("source").n_unique().alias("sources")
    )
    sizes = per_person["records"]
    multi_source = per_person.filter(pl.col("sources") > 1)["records"].sum()
    return {
        "records": record_person.height,
        "persons": per_person.height,
        "cluster_size_max": int(sizes.max() or 0),
        "cluster_size_distribution": {
            str(k): int(v)
            for k, v in per_person.group_by(pl.col("records").clip(upper_bound=6))
            .len()
            .sort("records")
            .iter_rows()
        },
        "records_linked_across_sources_share": round(
            multi_source / max(1, record_person.height), 4
        ),
    }


def link(
    data_dir: Path,
    run_id: str,
    key: bytes,
    trained_model: Path | None = None,
    model_dir: Path = DEFAULT_MODEL_DIR,
    charts: bool = True,
    backend: BackendName | None = None,
    relink: bool = False,
) -> dict[str, Any]:
    """Link every pseudonymised source record to a stable person_id.

    Incremental (see ``incremental.py``) when the previous run left its linkage state in
    ``linked/`` and no full link is due; full otherwise, or when ``relink`` asks for one.
    ``backend`` is the engine Splink runs on (default: JOINEDUP_LINKAGE_BACKEND, else
    duckdb); the model, the outputs and their contracts are the same on each.
    """
    t0 = time.perf_counter()
    data_dir = Path(data_dir)
    model: LinkageModel = load_model(model_dir, trained_model)
    definition = (
        model.fingerprint() if trained_model is None else load_model(model_dir).fingerprint()
    )
    out = linked_dir(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    backend_name = backend or settings.linkage_backend

    fingerprint = key_fingerprint(key)
    if trained_model is not None:
        _check_model_key(data_dir, Path(trained_model), fingerprint)
    try:
        write_linkage_inputs(data_dir, key)
        fingerprints = record_fingerprints(data_dir, key)
        plan = _plan(
            out,
            model_dir,
            model,
            definition,
            fingerprint,
            fingerprints,
            relink,
            trained_model is not None,
        )
        summary = _link(data_dir, run_id, key, model, out, backend_name, settings, charts, t0, plan)
    finally:
        remove_linkage_inputs(data_dir)
    kept = fingerprints.join(
        pl.read_parquet(out / "record_person.parquet", columns=["source", "record_token"]),
        on=["source", "record_token"],
        how="semi",
    )
    previous_runs = (plan.state or {}).get("runs_since_full", 0)
    # A run linked again under its own id (a re-run after a kill, a cleared task) is the
    # same run: counting it twice would bring the scheduled re-link forward.
    counted = (plan.state or {}).get("last_run_id") == run_id
    write_state(
        out,
        kept,
        {
            "last_run_id": run_id,
            "last_mode": summary["mode"]["mode"],
            "last_full_run_id": run_id
            if summary["mode"]["mode"] == "full"
            else (plan.state or {}).get("last_full_run_id"),
            "runs_since_full": 0
            if summary["mode"]["mode"] == "full"
            else previous_runs + (0 if counted else 1),
            "model_definition": definition,
            "model_sha256": _sha256(out / "model.json"),
            "key_fingerprint": fingerprint,
        },
        full=summary["mode"]["mode"] == "full",
    )
    return summary


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class _Plan:
    """Which mode this run links in, why, and what the previous run left."""

    mode: str  # "full" or "incremental"
    why: str
    state: dict[str, Any] | None = None
    previous_model: LinkageModel | None = None  # set when incremental could run
    change: Delta | None = None


def _plan(
    out: Path,
    model_dir: Path,
    model: LinkageModel,
    definition: str,
    key_fp: str,
    fingerprints: pl.DataFrame,
    relink: bool,
    model_given: bool,
) -> _Plan:
    """Full or incremental (see docs/linkage.md, Incremental linkage): the first reason wins."""
    state = read_state(out)
    files = [out / "record_person.parquet", out / "model.json", out / FINGERPRINTS]
    if state is None or not all(f.exists() for f in files):
        return _Plan("full", "no previous linkage state in linked/ (first run)", state)
    if state.get("key_fingerprint") != key_fp:
        return _Plan("full", "the previous linkage ran under another key", state)
    if state.get("model_definition") != definition:
        return _Plan(
            "full", "linkage/settings.json or training.json changed since the last link", state
        )
    if _sha256(out / "model.json") != state.get("model_sha256"):
        return _Plan("full", "linked/model.json changed since the run that wrote it", state)
    if not (out / FINGERPRINTS_AT_FULL).exists():  # a state an earlier joinedup wrote
        return _Plan(
            "full", f"no record of the last full link's records ({FINGERPRINTS_AT_FULL})", state
        )
    change = delta(fingerprints, pl.read_parquet(out / FINGERPRINTS))
    since_full = delta(fingerprints, pl.read_parquet(out / FINGERPRINTS_AT_FULL))
    previous_model = load_model(model_dir, out / "model.json")
    plan = _Plan("incremental", "", state, previous_model, change)
    every = schedule(model.training)
    runs = int(state.get("runs_since_full", 0)) + 1
    if relink:
        plan.mode, plan.why = "full", "full re-link requested (--relink / relink=True)"
    elif model_given:
        plan.mode, plan.why = "full", "a trained model was given (--linkage-model)"
    elif every["relink_every_runs"] and runs >= every["relink_every_runs"]:
        plan.mode, plan.why = (
            "full",
            (
                f"scheduled: {runs} runs since the last full link "
                f"(incremental.relink_every_runs {every['relink_every_runs']})"
            ),
        )
    elif since_full.new_share > (bound := every["relink_when_new_share_above"]):
        # Cumulative, not this delivery's share: twelve monthly deliveries of 3% each leave
        # a model trained on a third fewer records (an early one, on the first months,
        # has m = 0 for the fuzzy levels it never saw, and misses opted-out people's
        # records a fresh model finds: issue 23).
        plan.mode, plan.why = (
            "full",
            (
                f"new and changed records since the last full link are "
                f"{since_full.new_share:.1%} of all, above "
                f"incremental.relink_when_new_share_above ({bound:.0%})"
            ),
        )
    else:
        plan.why = (
            f"previous linkage state found; {change.new_share:.1%} of records new or "
            f"changed ({since_full.new_share:.1%} since the last full link)"
        )
    return plan


def _check_model_key(data_dir: Path, trained_model: Path, fingerprint: str) -> None:
    """Refuse a trained model that runs under another key wrote (their records say so)."""
    from joinedup.provenance import key_fingerprints_of_output, sha256_file

    if not trained_model.is_file():
        return  # load_model says what is wrong with it
    made_under = key_fingerprints_of_output(data_dir, sha256_file(trained_model))
    if made_under and fingerprint not in made_under:
        raise KeyMismatchError(
            f"trained model {trained_model} was made by a run under key fingerprint "
            f"{', '.join(sorted(made_under))}, not this run's key ({fingerprint}): train a new "
            "model (leave trained_model blank) or run with the key that trained it."
        )


def _link(
    data_dir: Path,
    run_id: str,
    key: bytes,
    model: LinkageModel,
    out: Path,
    backend_name: BackendName,
    settings: Settings,
    charts: bool,
    t0: float,
    plan: _Plan,
) -> dict[str, Any]:
    previous_path = out / "record_person.parquet"
    previous = pl.read_parquet(previous_path) if previous_path.exists() else None
    register_path = out / "person_ids.parquet"
    issued = set(pl.read_parquet(register_path)["person_id"]) if register_path.exists() else set()
    incremental: dict[str, Any] | None = None
    drift_figures: dict[str, Any] | None = None
    training_choice: dict[str, Any] | None = None
    blocking: dict[str, Any] | None = None
    with open_backend(backend_name, data_dir, settings) as engine:
        t_start = time.perf_counter()
        counts = engine.load_records()
        if sum(counts.values()) == 0:
            raise LinkageError(
                "no source records to link: every pseudonymised record table is empty"
            )
        engine.load_opted_out()
        linker: Linker | None = None
        if plan.mode == "incremental":
            assert plan.previous_model is not None and plan.change is not None
            assert previous is not None
            model = plan.previous_model
            t_train = time.perf_counter()
            clusters, incremental, split = incremental_clusters(
                engine, model, previous, plan.change
            )
            trained = model.settings  # the previous model, as it was written
        else:
            linker = engine.linker({f"records_{s}": s for s in RECORD_TABLES}, model.settings)
            blocking = copy.deepcopy(getattr(engine, "prediction_blocking", None))
            if not model.trained:
                log.info(
                    "training the linkage model on %s records (%s)",
                    f"{sum(counts.values()):,}",
                    engine.name,
                )
                chosen, training_choice = choose_training(engine, model.training)
                log.info("linkage training rules: %s", training_choice["why"])
                _train(linker, engine.training(chosen), engine.u_chunks)
            t_train = time.perf_counter()
            clusters, split = _full_clusters(engine, linker, model)
            # The model as the repository writes it (DuckDB SQL), whichever engine trained it.
            trained = engine.model_sql(linker.misc.save_model_to_json(), model.settings)
        t_cluster = time.perf_counter()
        if plan.mode == "full" and plan.change is not None and previous is not None:
            # What incremental linkage would have made of this run, to measure its drift.
            assert plan.previous_model is not None
            inc_clusters, incremental, _ = incremental_clusters(
                engine, plan.previous_model, previous, plan.change
            )
            # ...and which opted-out people's records its (older) model would have removed.
            inc_removed, _ = _propagate_opt_outs(
                engine, plan.previous_model.settings, model.opt_out_threshold, inc_clusters
            )
        t_drift = time.perf_counter()

        removed, scored = _propagate_opt_outs(engine, trained, model.opt_out_threshold, clusters)
        clusters = clusters.join(removed, on=["source", "record_token"], how="anti")
        if plan.mode == "full" and incremental is not None:
            inc_person, _ = assign_person_ids(
                inc_clusters.join(removed, on=["source", "record_token"], how="anti"),
                previous,
                set(issued),
                key,
            )
        record_person, id_stats = assign_person_ids(clusters, previous, issued, key)
        if plan.mode == "full" and incremental is not None:
            drift_figures = drift(inc_person, record_person)
            # Records this full link removes for opt-out that incremental would have kept:
            # a privacy figure, not only an accuracy one (docs/linkage.md).
            drift_figures["opt_out_records_kept_by_incremental"] = removed.join(
                inc_removed, on=["source", "record_token"], how="anti"
            ).height
            drift_figures["seconds"] = round(t_drift - t_cluster, 1)
            drift_figures["incremental"] = incremental  # what it scored and merged
            log.info(
                "drift of incremental linkage from this full link: pairwise F1 %s, %s of "
                "records with another person",
                drift_figures["f1"],
                f"{drift_figures['records_with_other_person_share']:.3%}",
            )

        chart_files = (
            _charts(linker, engine, trained, clusters, model.cluster_threshold, out / "charts")
            if charts and linker is not None
            else []
        )
    write_text(json.dumps(trained, indent=2, sort_keys=True), out / "model.json")
    # record_person before the register: a kill between them must leave the register
    # behind, never ahead (see person_ids.py, crash safety).
    write_parquet(record_person, previous_path)
    write_parquet(pl.DataFrame({"person_id": sorted(issued)}), register_path)
    write_parquet(removed, data_dir / LINKAGE_OPTED_OUT_RECORDS)

    change = plan.change
    summary = {
        "run_id": run_id,
        "backend": backend_name,
        "mode": {"mode": plan.mode, "why": plan.why},
        "key_fingerprint": key_fingerprint(key),
        "model_fingerprint": model.fingerprint(),
        "trained_this_run": plan.mode == "full" and not model.trained,
        "training_choice": training_choice,
        "records_in": counts,
        "records_changed": None if change is None else change.counts(),
        "records_scored": (
            incremental["records_scored"]
            if plan.mode == "incremental" and incremental
            else sum(counts.values())
        ),
        "incremental": incremental if plan.mode == "incremental" else None,
        "drift": drift_figures,
        "full_pairs_scored": None if blocking is None else blocking.get("pairs_to_score"),
        "records_scored_for_opt_out": dict(sorted(scored.items())),
        "records_removed_for_opt_out": dict(
            removed.group_by("source").len().sort("source").iter_rows()
        ),
        "nhs_number_split": split,
        **_cluster_figures(record_person),
        **id_stats,
        "thresholds": model.training["thresholds"],
        "charts": chart_files,
        "seconds": {
            "start_engine": round(t_start - t0, 1),
            "train": round(t_train - t0, 1),
            "predict_cluster": round(t_cluster - t_train, 1),
            "drift": round(t_drift - t_cluster, 1),
            "total": round(time.perf_counter() - t0, 1),
        },
    }
    write_text(json.dumps(summary, indent=2), out / "summary.json")
    log.info(
        "linked %s records into %s persons in %.1fs (%s: %s)",
        f"{record_person.height:,}",
        f"{summary['persons']:,}",
        summary["seconds"]["total"],
        plan.mode,
        plan.why,
    )
    return summary


def _full_clusters(
    engine: LinkageBackend, linker: Linker, model: LinkageModel
) -> tuple[pl.DataFrame, dict[str, Any] | None]:
    """Every blocked pair scored, clustered, and clusters holding two NHS numbers split."""
    predictions = linker.inference.predict(threshold_match_probability=model.predict_threshold)
    clusters_sdf = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=model.cluster_threshold
    )
    clusters = engine.frame(
        f"SELECT source, record_token, CAST(cluster_id AS STRING) AS cluster_id "
        f"FROM {clusters_sdf.physical_name}",
    )
    split: dict[str, Any] | None = None
    if model.split_on_distinct_nhs_numbers:
        clusters, split = split_on_nhs_numbers(
            engine, predictions.physical_name, clusters, model.cluster_threshold
        )
        log.info(
            "split %s clusters holding two or more valid NHS numbers into %s",
            f"{split['clusters_split']:,}",
            f"{split['clusters_made']:,}",
        )
    return clusters, split
