"""The ``neural-sorter`` command: sort folders through the Dagster pipeline, undo, manage sources, view."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from neural_sorter import settings


def _fail(message: str, code: int = 1) -> int:
    print(f"neural-sorter: error: {message}", file=sys.stderr)
    return code


def _instance():
    settings.prepare_dagster_home()
    from dagster import DagsterInstance

    return DagsterInstance.get()


def _resource_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.config:
        config["config_file"] = str(Path(args.config).expanduser().resolve())
    for name in ("backend", "clip_model", "output_dir", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            config[name] = value
    if args.categories is not None:
        config["categories"] = [c.strip() for c in args.categories.split(",") if c.strip()]
    return config


def _op_config(args: argparse.Namespace) -> dict[str, Any]:
    ops: dict[str, dict[str, Any]] = {}

    def put(op: str, key: str, value: Any) -> None:
        if value is not None:
            ops.setdefault(op, {"config": {}})["config"][key] = value

    put("embeddings", "precision", args.precision)
    put("clusters", "method", args.method)
    put("clusters", "k", str(args.k) if args.k is not None else None)
    put("3d_projection", "projection", args.projection)
    put("reorganized_tree", "mode", args.mode)
    put("reorganized_tree", "rename", True if args.rename else None)
    put("reorganized_tree", "dry_run", True if args.dry_run else None)
    put("reorganized_tree", "force", True if args.force else None)
    put("trained_autoencoder", "retrain", True if args.retrain else None)
    put("clusters", "recluster", True if args.recluster else None)
    put("3d_projection", "recluster", True if args.recluster else None)
    return ops


def _first_failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            error = data.error
            while error is not None and error.cause is not None and "Failure" not in error.cls_name:
                error = error.cause
            message = (error.message if error else str(data)).strip().splitlines()
            return f"{event.step_key}: {message[-1] if message else 'failed'}"
    return "run failed"


def summarize(store: str, key: str, source: Path) -> dict[str, Any]:
    """The per-partition summary printed by ``--json``, read back from the stored assets."""
    from neural_sorter.io_managers import read_asset

    manifest = read_asset(store, "file_manifest", key)
    frames = read_asset(store, "decoded_frames", key, columns=["relative_path", "error"])  # not the thumbnails
    embeds = read_asset(store, "embeddings", key, columns=["reused", "backend", "model_id"])  # nor the vectors
    clusters = read_asset(store, "clusters", key)
    tree = read_asset(store, "reorganized_tree", key)
    failed = []
    if manifest is not None:
        bad = manifest[manifest["kind"] == "unsupported"]
        failed += [
            {"file": p, "stage": "file_manifest", "reason": r} for p, r in zip(bad["relative_path"], bad["reason"])
        ]
    if frames is not None:
        bad = frames[frames["error"].notna()]
        failed += [
            {"file": p, "stage": "decoded_frames", "reason": r} for p, r in zip(bad["relative_path"], bad["error"])
        ]
    decoded = 0 if frames is None else int(frames.loc[frames["error"].isna(), "relative_path"].nunique())
    sizes = {} if clusters is None else {str(k): int(v) for k, v in clusters["cluster_name"].value_counts().items()}
    summary = {
        "partition": key,
        "source": str(source),
        "files": 0 if manifest is None else len(manifest),
        "decoded": decoded,
        "failed": failed,
        "embedded_new": 0 if embeds is None else int((~embeds["reused"]).sum()),
        "embedded_reused": 0 if embeds is None else int(embeds["reused"].sum()),
        "backend": None if embeds is None or not len(embeds) else str(embeds["backend"].iloc[0]),
        "model_id": None if embeds is None or not len(embeds) else str(embeds["model_id"].iloc[0]),
        "clusters": sizes,
    }
    if tree is not None and len(tree):
        summary["actions"] = {str(k): int(v) for k, v in tree["action"].value_counts().items()}
        summary["placement_errors"] = [
            {"file": s, "reason": e} for s, e in zip(tree["source"], tree["error"]) if isinstance(e, str)
        ]
        summary["dry_run"] = bool(tree["dry_run"].iloc[0])
    return summary


def sort_source_job_def():
    """The ``sort_source`` job, found by import path so ``dagster.execute_job`` can rebuild it."""
    from neural_sorter.definitions import defs

    return defs.resolve_job_def("sort_source")


def cmd_sort(args: argparse.Namespace) -> int:
    import dagster as dg

    from neural_sorter.reorganize import OutputDirError, check_output_dir
    from neural_sorter.sources import PARTITIONS_NAME, SourceRegistry

    try:
        config = settings.load_config(args.config)
        config.updated(backend=args.backend, clip_model=args.clip_model, seed=args.seed)
    except settings.ConfigError as exc:
        return _fail(str(exc), 2)
    out = args.output_dir or config.output_dir
    if not out:
        return _fail("no output folder: pass --out DIR or set output_dir in the config file", 2)
    args.output_dir = str(Path(out).expanduser().resolve())
    sources = [Path(s).expanduser().resolve() for s in (args.sources or config.sources)]
    if not sources:
        return _fail("no source folder: pass one or more SRC or list `sources:` in the config file", 2)
    for source in sources:
        if not source.exists():
            return _fail(f"source {source} does not exist", 2)
        if not source.is_dir():
            return _fail(f"source {source} is a file, not a folder", 2)
    try:
        check_output_dir(Path(args.output_dir), sources, force=args.force)
    except OutputDirError as exc:
        return _fail(str(exc), 2)
    instance = _instance()
    store = settings.store_root()
    registry = SourceRegistry(store)
    run_config = {
        # One process for the whole run by default: a step per process would import torch eight times.
        "execution": {"config": {"in_process": {}}},
        "resources": {"sorter": {"config": _resource_config(args)}},
        "ops": _op_config(args),
        "loggers": {"console": {"config": {"log_level": "DEBUG" if args.verbose else "WARNING"}}},
    }
    status = 0
    for source in sources:
        key = registry.add(source)
        instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
        if not args.json:
            print(f"sorting {source} (partition {key}) -> {args.output_dir}/{key}", file=sys.stderr)
        # execute_job, not execute_in_process: the latter keeps every step's output in memory for the whole
        # run (thumbnails, vectors), which on a 20,000-image folder is most of the run's peak memory.
        with dg.execute_job(
            dg.reconstructable(sort_source_job_def),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": key},
        ) as result:
            failure = None if result.success else _first_failure(result)
            run_id = result.run_id
        if failure is not None:
            status = 1
            print(f"neural-sorter: error: {source}: {failure} (run {run_id})", file=sys.stderr)
            continue
        summary = summarize(store, key, source) | {"run_id": run_id, "output": f"{args.output_dir}/{key}"}
        if args.json:
            print(json.dumps(summary))
        else:
            _print_summary(summary)
    return status


def _print_summary(summary: dict[str, Any]) -> None:
    print(
        f"{summary['source']}: {summary['files']} files, {summary['decoded']} decoded, "
        f"{len(summary['failed'])} skipped/failed; backend {summary['backend']} "
        f"({summary['embedded_new']} embedded, {summary['embedded_reused']} reused)"
    )
    for name, size in summary["clusters"].items():
        print(f"  {name:<30} {size:>6}")
    for failure in summary["failed"][:20]:
        print(f"  ! {failure['file']}: {failure['reason']}")
    if len(summary["failed"]) > 20:
        print(f"  ! ... and {len(summary['failed']) - 20} more (see --json)")
    dry = " (dry run: manifest only)" if summary.get("dry_run") else ""
    print(f"-> {summary['output']}{dry}  actions: {summary.get('actions', {})}")


def cmd_undo(args: argparse.Namespace) -> int:
    from neural_sorter.reorganize import OutputBusyError, undo_last

    try:
        out = args.out or settings.load_config(args.config).output_dir
    except settings.ConfigError as exc:
        return _fail(str(exc), 2)
    if not out:
        return _fail("which output folder? pass OUT or set output_dir in the config file", 2)
    try:
        report = undo_last(Path(out).expanduser().resolve())
    except (FileNotFoundError, OutputBusyError) as exc:
        return _fail(str(exc))
    print(f"undid {report.manifest}: {report.reverted} reverted, {len(report.skipped)} left in place")
    for path, reason in report.skipped:
        print(f"  ! {path}: {reason}")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    from neural_sorter.sources import PARTITIONS_NAME, SourceRegistry, partition_key_for

    registry = SourceRegistry(settings.store_root())
    if args.action == "add":
        instance = _instance()
        for path in args.paths:
            folder = Path(path).expanduser().resolve()
            if not folder.is_dir():
                return _fail(f"{folder} is not a folder", 2)
            key = registry.add(folder)
            instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
            print(f"{key}\t{folder}")
    elif args.action == "remove":
        instance = _instance()
        for item in args.paths:
            key = registry.remove(item)
            if key is None:
                return _fail(f"{item} is not a registered source")
            instance.delete_dynamic_partition(PARTITIONS_NAME, key)
            print(f"removed {key} (its stored assets and sorted folders are kept)")
    else:
        entries = registry.entries()
        try:
            for source in settings.load_config(args.config).sources:
                entries.setdefault(partition_key_for(source), os.path.abspath(source) + "  (config)")
        except settings.ConfigError as exc:
            return _fail(str(exc), 2)
        for key, path in sorted(entries.items()):
            print(f"{key}\t{path}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    if args.home:
        os.environ["NEURAL_SORTER_HOME"] = str(Path(args.home).expanduser().resolve())
    try:
        from dash_viewer.app import run
    except ImportError as exc:
        return _fail(f"the viewer is not available: {exc}")
    run(host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neural-sorter", description=__doc__)
    parser.add_argument("--config", help="YAML config file (default: $NEURAL_SORTER_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    sort = sub.add_parser("sort", help="sort folders into per-cluster folders")
    sort.add_argument("sources", nargs="*", metavar="SRC", help="source folders (default: config `sources`)")
    sort.add_argument("--out", dest="output_dir", metavar="OUT", help="output folder")
    sort.add_argument("--backend", choices=["auto", "clip", "cnn", "autoencoder"])
    sort.add_argument("--clip-model", metavar="ID_OR_DIR", help="Hugging Face hub id or local model folder")
    sort.add_argument("--categories", metavar="a,b,c", help="CLIP text categories used to name clusters")
    sort.add_argument(
        "--precision", choices=["fp32", "int8"], help="int8: quantized CLIP on CPU, faster (bench/README.md)"
    )
    sort.add_argument("--method", choices=["kmeans", "hierarchical", "hdbscan"])
    sort.add_argument("--k", metavar="N|auto", type=_k_value)
    sort.add_argument("--projection", choices=["umap", "tsne", "pca"])
    sort.add_argument("--mode", choices=["copy", "hardlink", "symlink", "move"])
    sort.add_argument("--rename", action="store_true", help="prefix names with sortable hierarchical codes")
    sort.add_argument("--dry-run", action="store_true", help="write only the manifest")
    sort.add_argument("--force", action="store_true", help="allow a non-empty OUT not made by neural-sorter")
    sort.add_argument("--retrain", action="store_true", help="retrain the autoencoder even if frames are unchanged")
    sort.add_argument("--recluster", action="store_true", help="cluster from scratch, not keeping clusters stable")
    sort.add_argument("--seed", type=int)
    sort.add_argument("--json", action="store_true", help="print one JSON summary per source")
    sort.add_argument("-v", "--verbose", action="store_true", help="show Dagster's event log")
    sort.set_defaults(func=cmd_sort)

    undo = sub.add_parser("undo", help="revert the last reorganization of OUT")
    undo.add_argument("out", nargs="?", metavar="OUT")
    undo.set_defaults(func=cmd_undo)

    sources = sub.add_parser("sources", help="manage registered source folders (partitions)")
    sources.add_argument("action", choices=["add", "list", "remove"])
    sources.add_argument("paths", nargs="*", metavar="PATH_OR_KEY")
    sources.set_defaults(func=cmd_sources)

    view = sub.add_parser("view", help="open the 3D viewer")
    view.add_argument("--home", help="neural-sorter home (default $NEURAL_SORTER_HOME)")
    view.add_argument("--host", default="127.0.0.1")
    view.add_argument("--port", type=int, default=8050)
    view.set_defaults(func=cmd_view)
    return parser


def _k_value(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("k must be a whole number or 'auto'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("k must be >= 1")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    try:
        return args.func(args)
    except settings.ConfigError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
