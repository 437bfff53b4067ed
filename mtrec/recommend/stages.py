"""Batch recommendation end to end: retrieval -> multi-task ranking -> blend -> top N per user.

Run directory (`mtrec recommend -c CONFIG.yaml --run-dir RUN_DIR`):
    config.yaml              the resolved config
    retrieval/               the two-tower retrieval directory (towers, index, metrics)
    candidates.parquet       top-k retrieval candidates per user (training items excluded)
    ranking/                 the ranker's mtrec run directory (model.keras, report...)
    recommendations.parquet  user, rank, item, every task's score, the blended score,
                             retrieval score and rank, source, gate summary
    evaluation.json / .md    Recall@N, NDCG@N, MRR@N on held-out interactions:
                             retrieval alone against retrieval + ranking
    run.json                 status and timings (ranking rows/s)

Users without training interactions get the most popular items as
candidates (`source` = "popularity"), which the ranker then orders like any
other candidates; everyone else gets retrieval candidates (`source` =
"retrieval").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from mtrec.data.io import write_parquet
from mtrec.errors import MtrecError
from mtrec.recommend.blend import Blend, top_n
from mtrec.recommend.config import RecommendConfig
from mtrec.recommend.interactions import Tables, holdout_split, load_tables, popularity, with_features
from mtrec.recommend.metrics import ranking_metrics
from mtrec.recommend.ranking import ranking_rows, score_candidates
from mtrec.retrieval import CandidateIndex, train_retrieval
from mtrec.utils.atomic import write_json, write_text

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RecommendResult:
    """What `recommend` returns.

    Attributes:
        run_dir: the run directory.
        recommendations: the written table (top n per user).
        evaluation: the offline metrics (`evaluation.json`).
        timings: seconds per stage and ranking rows/s.
        output: where the recommendations were written.
    """

    run_dir: Path
    recommendations: pd.DataFrame
    evaluation: dict[str, Any]
    timings: dict[str, float]
    output: Path


def retrieve_candidates(index: CandidateIndex, users: pd.DataFrame, train: pd.DataFrame,
                        config: RecommendConfig, progress: bool) -> pd.DataFrame:
    """Top-k candidates for every user: retrieval for users with training history, popularity otherwise.

    Returns:
        user, `rank`, item, `retrieval_score` (NaN for popularity rows), `source`.
    """
    user, item, k = config.data.user_id, config.data.item_id, config.output.k
    known = users[user].isin(train[user])
    parts = []
    if known.any():
        retrieved = index.query(users.loc[known, [user]], k=k, exclude_seen=True, progress=progress)
        parts.append(retrieved.assign(source="retrieval"))
    if (~known).any():
        popular = popularity(train, item, k)
        cold = users.loc[~known, user].to_numpy()
        parts.append(pd.DataFrame({
            user: np.repeat(cold, len(popular)),
            "rank": np.tile(np.arange(1, len(popular) + 1, dtype="int32"), len(cold)),
            item: np.tile(popular[item].to_numpy(), len(cold)),
            "retrieval_score": np.float32(np.nan), "source": "popularity"}))
        logger.warning("%d users have no training interactions: popularity candidates.", int((~known).sum()))
    return pd.concat(parts, ignore_index=True)


def rank_candidates(run, candidates: pd.DataFrame, tables: Tables, config: RecommendConfig,
                    progress: bool) -> tuple[pd.DataFrame, float, list[str]]:
    """Scores every candidate with the ranker and blends, a batch of users at a time.

    Returns:
        Every candidate with its task scores, `score`, `rank` by score and
        `retrieval_rank`, sorted by user then rank; the seconds spent; the
        names of the task score columns.
    """
    user, item = config.data.user_id, config.data.item_id
    blend = Blend(config.blend)
    step = config.output.batch_users
    parts = []
    task_columns: list[str] = []
    started = time.perf_counter()
    # `step` users per batch, in first-seen order, cut in one pass over the candidates.
    batch_of_row = pd.factorize(candidates[user])[0] // step
    with tqdm(total=candidates[user].nunique(), unit="users", desc="ranking", disable=not progress) as bar:
        for _, chunk in candidates.groupby(batch_of_row, sort=False):
            rows = with_features(chunk, tables, user, item)
            scores = score_candidates(run, rows, blend, gate_summary=config.output.gate_summary)
            extra = scores.drop(columns=[c for c in scores.columns if c in chunk.columns])
            task_columns = [c for c in extra.columns if c != "score" and not c.startswith("gate_")]
            scored = pd.concat([chunk.reset_index(drop=True), extra.reset_index(drop=True)], axis=1)
            parts.append(top_n(scored.rename(columns={"rank": "retrieval_rank"}), user, "score", config.output.k))
            bar.update(chunk[user].nunique())
    seconds = time.perf_counter() - started
    return pd.concat(parts, ignore_index=True), seconds, task_columns


def output_table(ranked: pd.DataFrame, config: RecommendConfig, task_columns: list[str]) -> pd.DataFrame:
    """The top-n rows per user in the output's column order."""
    user, item = config.data.user_id, config.data.item_id
    best = ranked[ranked["rank"] <= config.output.n]
    gates = [c for c in best.columns if c.startswith("gate_")]
    columns = [user, "rank", item, *task_columns, "score", "retrieval_score", "retrieval_rank", "source", *gates]
    return best[columns].reset_index(drop=True)


def evaluate(candidates: pd.DataFrame, ranked: pd.DataFrame, heldout: pd.DataFrame,
             config: RecommendConfig) -> dict[str, Any]:
    """Retrieval alone (candidates in retrieval order) against retrieval + ranking (blended order).

    Both lists come from the same k candidates, so the comparison isolates
    what the ranker's reordering does; `candidate_recall` (Recall@k of the
    candidates) bounds what any reordering can reach.
    """
    user, item, like = config.data.user_id, config.data.item_id, config.data.like
    report: dict[str, Any] = {"users": int(candidates[user].nunique()), "heldout_rows": len(heldout),
                              "k": config.output.k, "blend": dataclasses.asdict(config.blend), "results": []}
    for relevance in config.evaluation.relevance:
        relevant = heldout if relevance == "click" else heldout[heldout[like] == 1]
        bound = ranking_metrics(candidates, relevant, config.output.k, user, item)["recall"]
        for n in config.evaluation.ns:
            for name, lists in (("retrieval", candidates), ("retrieval + ranking", ranked)):
                metrics = ranking_metrics(lists, relevant, n, user, item)
                report["results"].append({"relevance": relevance, "n": n, "lists": name, **metrics,
                                          "candidate_recall": bound})
    return report


def format_evaluation(report: dict[str, Any]) -> str:
    """The evaluation as a Markdown table."""
    lines = [f"# Offline evaluation ({report['users']:,} users, {report['heldout_rows']:,} held-out "
             f"interactions, k = {report['k']} candidates)", "",
             "| relevant | lists | N | Recall@N | NDCG@N | MRR@N | users | candidate Recall@k |",
             "|---|---|---|---|---|---|---|---|"]
    for row in report["results"]:
        lines.append(f"| {row['relevance']} | {row['lists']} | {row['n']} | {row['recall']:.4f} | "
                     f"{row['ndcg']:.4f} | {row['mrr']:.4f} | {row['users']:,} | {row['candidate_recall']:.4f} |")
    return "\n".join(lines) + "\n"


def recommend(config: RecommendConfig, run_dir: str | Path, tables: Tables | None = None,
              progress: bool = True, reuse_retrieval: bool = False, verbose: int = 2) -> RecommendResult:
    """Runs retrieval -> ranking -> blend for every user and writes the run directory.

    Args:
        config: the job.
        run_dir: where to write.
        tables: interactions, users and items to use instead of `config.data`.
        progress: progress bars over users.
        reuse_retrieval: keep an existing `retrieval/` directory instead of
            training it again.
        verbose: Keras verbosity of both trainings.

    Returns:
        A RecommendResult.

    Raises:
        MtrecError: bad data or a failed stage (`run.json` says which).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", yaml.safe_dump(config.get_config(), sort_keys=False))
    write_json(run_dir / "run.json", {"status": "running", "started": dt.datetime.now().isoformat(timespec="seconds")})
    try:
        return _recommend(config, run_dir, tables, progress, reuse_retrieval, verbose)
    except BaseException as err:
        write_json(run_dir / "run.json", {"status": "failed", "error": f"{type(err).__name__}: {err}"})
        raise


def fit_retrieval(config: RecommendConfig, tables: Tables, train_rows: pd.DataFrame, heldout: pd.DataFrame,
                  retrieval_dir: Path, verbose: int = 2) -> dict[str, Any]:
    """Trains the two-tower stage on the training interactions, evaluated on the held-out ones.

    Returns:
        The retrieval metrics (`mtrec.retrieval.train_retrieval`).
    """
    user, item = config.data.user_id, config.data.item_id
    return train_retrieval(config.retrieval, with_features(train_rows, tables, user, item), tables.items,
                           retrieval_dir, test=with_features(heldout, tables, user, item), verbose=verbose)


def _recommend(config: RecommendConfig, run_dir: Path, tables: Tables | None, progress: bool,
               reuse_retrieval: bool, verbose: int) -> RecommendResult:
    from mtrec.recommend.interactions import check_tables
    from mtrec.training.run import train
    from mtrec.training.trained_run import load_run

    data = config.data
    user, item = data.user_id, data.item_id
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    tables = check_tables(tables, data) if tables is not None else load_tables(data)
    train_rows, heldout = holdout_split(tables.interactions, data.holdout, user)
    if train_rows.empty:
        raise MtrecError("The holdout left no training interactions.")
    timings["load_seconds"] = time.perf_counter() - clock

    clock = time.perf_counter()
    retrieval_dir = run_dir / "retrieval"
    if not (reuse_retrieval and (retrieval_dir / "index").is_dir()):
        print(f"[1/4] retrieval: training the two-tower model ({len(train_rows):,} interactions) "
              "in a Keras 2 process", flush=True)
        fit_retrieval(config, tables, train_rows, heldout, retrieval_dir, verbose=verbose)
    timings["retrieval_train_seconds"] = time.perf_counter() - clock

    clock = time.perf_counter()
    index = CandidateIndex.load(retrieval_dir)
    candidates = retrieve_candidates(index, tables.users, train_rows, config, progress)
    timings["retrieve_seconds"] = time.perf_counter() - clock
    write_parquet(candidates, run_dir / "candidates.parquet")

    clock = time.perf_counter()
    rows = ranking_rows(train_rows, candidates, config.negatives, data)
    print(f"[2/4] ranking: training {config.ranking.model.kind} on {len(rows):,} rows "
          f"({int(rows['click'].sum()):,} clicks, {int((rows['click'] == 0).sum()):,} sampled negatives)",
          flush=True)
    ranking_config = dataclasses.replace(
        config.ranking, training=dataclasses.replace(config.ranking.training, verbose=verbose))
    train(ranking_config, run_dir / "ranking", frame=with_features(rows, tables, user, item), overwrite=True)
    timings["ranking_train_seconds"] = time.perf_counter() - clock

    print(f"[3/4] recommending: {candidates[user].nunique():,} users x {config.output.k} candidates "
          f"-> top {config.output.n}", flush=True)
    run = load_run(run_dir / "ranking")
    ranked, seconds, task_columns = rank_candidates(run, candidates, tables, config, progress)
    timings["rank_seconds"] = seconds
    timings["ranking_rows_per_second"] = len(candidates) / seconds if seconds else float("nan")
    recommendations = output_table(ranked, config, task_columns)
    output = Path(config.output.path)
    output = output if output.is_absolute() else run_dir / output
    write_parquet(recommendations, output)

    print("[4/4] evaluating on held-out interactions", flush=True)
    evaluation = evaluate(candidates, ranked, heldout, config)
    evaluation["timings"] = {k: round(v, 3) for k, v in timings.items()}
    write_json(run_dir / "evaluation.json", evaluation)
    write_text(run_dir / "evaluation.md", format_evaluation(evaluation))
    write_json(run_dir / "run.json", {"status": "completed", "output": str(output),
                                      "rows": len(recommendations), "timings": evaluation["timings"]})
    return RecommendResult(run_dir, recommendations, evaluation, timings, output)

