"""``python -m mantile.cli.summarize DIR``: merge a multirun's results, write and print the Pareto front.

DIR is a multirun directory (``outputs/multirun/<time>``, one sub-directory per job) or a single run's
directory (``outputs/runs/<time>``, whose own ``results.parquet`` is the one job).

Idempotent: reads every job's ``results.parquet`` below DIR (not DIR's own merged file), de-duplicates
rows by their identity columns (a re-run job replaces its rows), and rewrites atomically:

- DIR/results.parquet: the merged table;
- DIR/dataset/model_id=.../hardware_id=.../part-*.parquet: the same rows as a hive-partitioned
  dataset for DuckDB, pandas, Polars and Spark;
- DIR/pareto.parquet (+ DIR/pareto_<model>_<hardware>.png with ``--plot``);
- DIR/capacity.parquet when the jobs ran ``+study=capacity``.

Pareto, SLA and plot settings default to the jobs' own config (stored in each Parquet file's
metadata); flags override them.

Up to ``KEEP_IN_MEMORY_MAX_POINTS`` rows (and no job wrote a dataset) the merge is done in memory and
DIR/results.parquet is one file. Beyond, it streams (``merge_dataset``): a (model, hardware)
partition that one job wrote as a dataset is hard-linked, not copied; other partitions are streamed
through Polars' ``sink_parquet`` (de-duplicated when several jobs wrote it); DIR/results.parquet is
then a directory of hard links to the dataset's files (no second copy on disk); the front is folded
over the dataset a batch at a time, and the summaries are streaming queries.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from mantile.analysis.sla import BOUNDS, Sla
from mantile.analysis.summary import relative
from mantile.analysis.tables import View, wrap
from mantile.cli.job import LATENCIES, output_format, pareto_settings, report, write_csv
from mantile.engine import dataset, io
from mantile.engine.runner import KEEP_IN_MEMORY_MAX_POINTS, ParetoSettings
from mantile.engine.table import IDENTITY
from mantile.specs import SpecError

PARTITION_BY = list(dataset.PARTITION_BY)


def job_files(root: Path, name: str = "results.parquet") -> list[Path]:
    """The jobs' files below ``root``; a single run's directory is its own one job."""
    below = sorted(p for p in Path(root).rglob(name) if p.parent != Path(root) and not p.name.startswith("."))
    return below or ([Path(root) / name] if (Path(root) / name).is_file() else [])


def merge(root: Path) -> pl.DataFrame:
    files = job_files(root)
    if not files:
        raise FileNotFoundError(f"no results.parquet below {root}")
    scans = [dataset.scan(f) if f.is_dir() else pl.scan_parquet(f) for f in files]
    lf = pl.concat(scans, how="diagonal_relaxed")
    keys = [c for c in IDENTITY if c in lf.collect_schema().names()]
    return lf.unique(subset=keys, keep="last", maintain_order=True).collect()


def _partitions(source: Path) -> dict[tuple[str, str], pl.LazyFrame]:
    """A job's rows by (model_id, hardware_id), lazily, without the key columns."""
    if source.is_dir():
        keys = {tuple(dataset.partition_of(f, source).get(k, "") for k in PARTITION_BY)
                for f in dataset.parts(source)}
        lf = dataset.scan(source)
    else:
        lf = pl.scan_parquet(source)
        found = lf.select(pl.col(PARTITION_BY).cast(pl.String)).unique().collect(engine="streaming")
        keys = {(str(m), str(h)) for m, h in found.iter_rows()}
    model, hardware = (pl.col(k).cast(pl.String) for k in PARTITION_BY)
    return {(m, h): lf.filter((model == m) & (hardware == h)).drop(PARTITION_BY) for m, h in sorted(keys)}


def merge_dataset(files: list[Path], out: Path, config_yaml: str) -> None:
    """Write the merged rows of ``files`` (job outputs, later jobs win) as a hive dataset at ``out``,
    streaming: memory holds a few row groups, plus, where several jobs wrote the same partition,
    Polars' hash table of that partition's identity columns."""
    sources: dict[tuple[str, str], list[tuple[Path, pl.LazyFrame]]] = {}
    for f in files:
        for key, lf in _partitions(f).items():
            sources.setdefault(key, []).append((f, lf))
    staging = dataset.staging_dir(out)
    shutil.rmtree(staging, ignore_errors=True)
    meta = {k.decode(): v.decode() for k, v in io.metadata(config_yaml).items()}
    try:
        for (model_id, hardware_id), jobs in sources.items():
            target = dataset.partition_dir(staging, model_id, hardware_id)
            if len(jobs) == 1 and jobs[0][0].is_dir():
                dataset.link_tree(dataset.partition_dir(jobs[0][0], model_id, hardware_id), target)
                continue
            target.mkdir(parents=True)
            lf = pl.concat([j[1] for j in jobs], how="diagonal_relaxed")
            if len(jobs) > 1:
                keys = [c for c in IDENTITY if c in lf.collect_schema().names()]
                lf = lf.unique(subset=keys, keep="last", maintain_order=True)
            lf.sink_parquet(dataset.part_path(staging, model_id, hardware_id, 0), metadata=meta,
                            row_group_size=io.ROW_GROUP_ROWS, engine="streaming")
        io.replace_path(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link_copy(src: Path, dst: Path) -> None:
    """``dst``: the dataset ``src`` under a second name, as hard links, swapped in atomically."""
    staging = dataset.staging_dir(dst)
    shutil.rmtree(staging, ignore_errors=True)
    dataset.link_tree(src, staging)
    io.replace_path(staging, dst)


def job_config(root: Path) -> dict[str, Any]:
    """The resolved config of the first job (from its Parquet metadata), or {} if there is none."""
    files = job_files(root)
    first = dataset.parts(files[0])[:1] if files and files[0].is_dir() else files[:1]
    text = io.read_metadata(first[0]).get("config", "") if first else ""
    return (yaml.safe_load(text) or {}) if text else {}


def summarize(root: Path, pareto_cfg: Mapping[str, Any] | None = None, plot: bool | None = None,
              quiet: bool = False, sla_cfg: Mapping[str, Any] | None = None,
              study: str | None = None, view_cfg: Mapping[str, Any] | None = None,
              output_cfg: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Merge, write the merged table, the dataset and the front; print the summary; return the front."""
    root = Path(root)
    saved = job_config(root)
    pareto = pareto_settings({"pareto": {**(saved.get("pareto") or {}), **dict(pareto_cfg or {})}})
    sla = Sla.from_config({**(saved.get("sla") or {}), **dict(sla_cfg or {})})
    plot = bool(saved.get("plot", False)) if plot is None else plot
    study = study or (saved.get("study") or {}).get("name")
    view = View.from_config({**(saved.get("summary") or {}), **dict(view_cfg or {})})
    fmt = output_format({"output": {**(saved.get("output") or {}), **dict(output_cfg or {})}})
    config_yaml = yaml.safe_dump(saved) if saved else ""
    files = job_files(root)
    if not files:
        raise FileNotFoundError(f"no results.parquet below {root}")
    from mantile.cli import disagg

    if disagg.requested(saved):  # the jobs ran P prefill + D decode instances (cli/disagg.py)
        return disagg.merge(files, root, config_yaml, quiet)
    rows = sum(dataset.count_rows(f) for f in files)
    if rows <= KEEP_IN_MEMORY_MAX_POINTS and all(f.is_file() for f in files):
        df = merge(root)
        lf, rows, front = df.lazy(), df.height, pareto.front(df)
        io.write_parquet(df, root / "results.parquet", config_yaml)
        io.write_hive_dataset(df, root / "dataset", [c for c in PARTITION_BY if c in df.columns], config_yaml)
    else:
        merge_dataset(files, root / "dataset", config_yaml)
        _link_copy(root / "dataset", root / "results.parquet")
        lf, rows = dataset.scan(root / "dataset"), dataset.count_rows(root / "dataset")
        front = pareto.fold(dataset.batches(root / "dataset"))
    io.write_parquet(front, root / "pareto.parquet", config_yaml)
    with pl.Config(engine_affinity="streaming"):
        return _outputs(root, lf, rows, front, pareto, sla, plot, study, config_yaml, quiet, len(files), view, fmt)


def _outputs(root: Path, lf: pl.LazyFrame, rows: int, front: pl.DataFrame, pareto: ParetoSettings, sla: Sla,
             plot: bool, study: str | None, config_yaml: str, quiet: bool, n_jobs: int, view: View,
             fmt: str) -> pl.DataFrame:
    """The capacity table (``study=capacity``), the CSV copies and the printed summary of a merged
    multirun."""
    capacity = None
    if study == "capacity":
        from mantile.analysis.capacity import capacity_table

        capacity = capacity_table(lf, sla)
        io.write_parquet(capacity, root / "capacity.parquet", config_yaml)
    csv = write_csv(root, fmt)
    if quiet:
        return front
    print(wrap(f"merged {n_jobs} job(s), {rows:,} rows -> {relative(root / 'results.parquet')}"))
    print(wrap(f"dataset: {relative(root / 'dataset')} (hive-partitioned by {', '.join(PARTITION_BY)})"))
    report(lf, front, root, pareto, sla, plot, view, capacity)
    print(wrap(f"pareto: {relative(root / 'pareto.parquet')}"))
    for path in csv:
        print(wrap(f"csv: {relative(path)}"))
    return front


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mantile.cli.summarize", description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="a multirun directory (outputs/multirun/<time>) or a run's "
                    "(outputs/runs/<time>)")
    ap.add_argument("--latency", choices=LATENCIES, help="latency objective (minimized)")
    ap.add_argument("--throughput", help="throughput objective (maximized)")
    ap.add_argument("--by", help="comma-separated group columns for separate fronts ('' = one front)")
    ap.add_argument("--cost", choices=["cost_usd_per_million_tokens"], help="a third objective (minimized)")
    for key in BOUNDS:
        ap.add_argument(f"--{key.replace('_', '-')}", type=float, dest=key, help=f"SLA bound on {key}")
    ap.add_argument("--plot", action="store_true", default=None, help="write a PNG of each Pareto front")
    ap.add_argument("--wide", action="store_true", default=None, help="more columns and the per-layer breakdown")
    ap.add_argument("--columns", help="comma-separated results columns for the tables")
    ap.add_argument("--format", choices=["parquet", "csv"], help="csv: also write results.csv, pareto.csv")
    args = ap.parse_args(argv)
    if not args.dir.is_dir():
        print(f"mantile.cli.summarize: error: {args.dir} is not a directory", file=sys.stderr)
        return 2
    pareto = {k: getattr(args, k) for k in ("latency", "throughput", "cost") if getattr(args, k)}
    if args.by is not None:
        pareto["by"] = [c for c in args.by.split(",") if c]
    try:
        view = {"wide": args.wide} if args.wide else {}
        if args.columns:
            view["columns"] = [c for c in args.columns.split(",") if c]
        summarize(args.dir, pareto, args.plot, sla_cfg={k: getattr(args, k) for k in BOUNDS
                                                          if getattr(args, k) is not None},
                  view_cfg=view, output_cfg={"format": args.format} if args.format else None)
    except (FileNotFoundError, SpecError, KeyError) as e:
        print(f"mantile.cli.summarize: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
