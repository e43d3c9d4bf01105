"""The ``neural-sorter`` command: sort folders through the Dagster pipeline, undo, manage sources, view."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import typing
from pathlib import Path
from typing import Any

from neural_sorter import settings
from neural_sorter.sources import default_output_dir, partition_key_for
from neural_sorter.store import Store
from neural_sorter.tables import CLUSTERS, DECODED_FRAMES, EMBEDDINGS, FILE_MANIFEST, REORGANIZED_TREE


def _fail(message: str, code: int = 1) -> int:
    print(f"neural-sorter: error: {message}", file=sys.stderr)
    return code


def _instance():
    """The Dagster instance, after failing the runs of earlier CLI calls that were killed mid-run (a SIGKILLed
    sort cannot record its end, and would otherwise show as running forever)."""
    settings.prepare_dagster_home()
    from dagster import DagsterInstance

    from neural_sorter import run_records

    instance = DagsterInstance.get()
    stale = run_records.sweep_once(instance)
    if stale:
        print(
            f"neural-sorter: note: marked {len(stale)} stale run(s) failed, their process is gone: {', '.join(stale)}",
            file=sys.stderr,
        )
    return instance


# The options `sort` offers, each declared once in its stage's options model; flags, choices, defaults and
# help are derived from there.
SORT_OPTIONS = (
    "backend",
    "clip_model",
    "cnn_model",
    "cnn_flip",
    "categories",
    "precision",
    "runtime",
    "method",
    "k",
    "projection",
    "mode",
    "rename",
    "keep_structure",
    "dry_run",
    "recluster",
    "seed",
    "duplicates",
    "near_threshold",
    "review",
)
# Where the steps run (README "Scaling out"); declared in settings.ExecutorOptions, run config built there.
EXECUTOR_OPTIONS = (
    "executor",
    "celery_broker",
    "celery_backend",
    "celery_queue",
    "embedding_queue",
    "files_queue",
    "queue_timeout",
)


def add_option_flags(parser: argparse.ArgumentParser, model, names) -> None:
    """One ``--flag`` per option of ``model``: choices from its Literal, help with its default."""
    for name in names:
        info = model.model_fields[name]
        flag = "--" + name.replace("_", "-")
        help_text = settings.describe(info).replace("%", "%%")
        args = typing.get_args(info.annotation)
        if info.annotation is bool:
            parser.add_argument(flag, action="store_const", const=True, help=help_text)
        elif typing.get_origin(info.annotation) is typing.Literal:
            parser.add_argument(flag, choices=list(args), help=help_text)
        elif typing.get_origin(info.annotation) is list:
            parser.add_argument(flag, type=_comma_list, metavar="A,B,C", help=help_text)
        elif info.annotation is int:
            parser.add_argument(flag, type=int, help=help_text)
        else:
            parser.add_argument(flag, type=str, metavar=name.upper(), help=help_text)


def _comma_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _option_values(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in SORT_OPTIONS}


def _first_failure(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            error = data.error
            while error is not None and error.cause is not None and "Failure" not in error.cls_name:
                error = error.cause
            message = (error.message if error else str(data)).strip().splitlines()
            last = message[-1] if message else "failed"
            return f"{event.step_key}: {last.split('Failure: ', 1)[-1]}"
    return "run failed"


def summarize(store: Store, key: str, source: Path) -> dict[str, Any]:
    """The per-partition summary printed by ``--json``, read back from the stored assets."""
    manifest = store.read(FILE_MANIFEST, key)
    frames = store.read(DECODED_FRAMES, key, columns=["relative_path", "error"])  # not the thumbnails
    embeds = store.read(EMBEDDINGS, key, columns=["reused", "backend", "model_id"])  # nor the vectors
    clusters = store.read(CLUSTERS, key)
    tree = store.read(REORGANIZED_TREE, key)
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
        "duplicates": _duplicate_report(clusters),
        "flagged": _flag_report(clusters),
    }
    if tree is not None and len(tree):
        summary["actions"] = {str(k): int(v) for k, v in tree["action"].value_counts().items()}
        summary["placement_errors"] = [
            {"file": s, "reason": e} for s, e in zip(tree["source"], tree["error"]) if isinstance(e, str)
        ]
        summary["dry_run"] = bool(tree["dry_run"].iloc[0])
        if "note" in tree:  # copies the user edited, kept where they are (tables from before have no note)
            summary["kept_edited"] = [
                {"file": d, "reason": n} for d, n in zip(tree["destination"], tree["note"]) if isinstance(n, str)
            ]
    return summary


def sort_source_job_def():
    """The ``sort_source`` job, found by import path so ``dagster.execute_job`` can rebuild it."""
    from neural_sorter.definitions import defs

    return defs.resolve_job_def("sort_source")


def cmd_sort(args: argparse.Namespace) -> int:
    from neural_sorter.reorganize import OutputDirError, check_output_dir
    from neural_sorter.sources import PARTITIONS_NAME

    try:
        config = settings.load_config(args.config).updated(
            **_option_values(args), **{name: getattr(args, name) for name in EXECUTOR_OPTIONS}
        )
    except settings.ConfigError as exc:
        return _fail(str(exc), 2)
    sources = [Path(settings.normalise_path(s)) for s in (args.sources or config.sources)]
    if not sources:
        return _fail("no source folder: pass one or more SRC or list `sources:` in the config file", 2)
    for source in sources:
        if not source.exists():
            return _fail(f"source {source} does not exist", 2)
        if not source.is_dir():
            return _fail(f"source {source} is a file, not a folder", 2)
    store = Store.default()
    outputs = {}
    for source in sources:
        recorded = store.sources.record(partition_key_for(source)).get("output_dir")
        out = args.output_dir or config.output_dir or recorded or default_output_dir(source)
        outputs[source] = Path(settings.normalise_path(out))
        try:
            check_output_dir(outputs[source], sources, force=args.force)
        except OutputDirError as exc:
            return _fail(str(exc), 2)
    clip_problem = _missing_clip_folder(config)
    if clip_problem:
        return _fail(clip_problem, 2)
    from neural_sorter import unchanged

    instance = None  # Dagster is started only for a source that needs a run (issue 15)
    status = 0
    # From here on Ctrl-C is a KeyboardInterrupt: Dagster holds it until a safe point in a step, the
    # placement loop stops between two files, and the run ends as interrupted (exit 130, one line).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for source in sources:
        out = outputs[source]
        # Nothing changed since the last successful sort (source tree, options, stored assets, OUT): print its
        # summary again instead of a run. Any doubt means the full run below.
        flags = {"force": bool(args.force), "retrain": bool(args.retrain)}
        check = unchanged.attempt(
            store, partition_key_for(source), source, out, config, flags, args.config or settings.config_path()
        )
        if check.summary is not None:
            summary = check.summary | {"unchanged": True}
            if args.json:
                print(json.dumps(summary), flush=True)
            else:
                print(f"unchanged since run {summary.get('run_id')}: {source} -> {summary['output']}", file=sys.stderr)
                _print_summary(summary)
            continue
        unchanged.forget(check.path)
        if instance is None:
            instance = _instance()
        key = store.sources.add(source, output_dir=out)
        instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
        if not args.json:
            print(f"sorting {source} (partition {key}) -> {store.sources.output_folder(key, out)}", file=sys.stderr)
        if config.executor == "celery":
            failure, run_id = _run_celery_sort(instance, config, args, key, out, str(store.root))
        else:
            run_config = _sort_run_config(args, out, str(store.root))
            failure, run_id = _run_sort(instance, run_config, key, args.verbose)
        if failure is not None and _was_interrupted(failure):
            return _fail(
                f"interrupted: {source} is partly sorted; `neural-sorter sort {source}` finishes it, "
                f"`neural-sorter undo {out}` reverts it",
                130,
            )
        if failure is not None:
            status = 1
            print(f"neural-sorter: error: {source}: {failure} (run {run_id})", file=sys.stderr)
            continue
        summary = summarize(store, key, source) | {
            "run_id": run_id,
            "output": str(store.sources.output_folder(key, out)),
            "undo": f"neural-sorter undo {out}",
            "manifest": str(out / ".neural-sorter" / "manifest.csv"),
            "unchanged": False,
        }
        unchanged.record(check, store, key, out, summary)
        if args.json:
            print(json.dumps(summary), flush=True)
        else:
            _print_summary(summary)
        if summary.get("placement_errors"):
            status = status or PARTLY_PLACED
            print(
                f"neural-sorter: error: {len(summary['placement_errors'])} file(s) of {source} could not be "
                f"placed (listed above); the rest are in {summary['output']}; fix the cause and sort again",
                file=sys.stderr,
            )
    return status


# Exit status of a sort whose pipeline ran but some files could not be placed (e.g. a full disk): distinct
# from 1 (a run failed) and 2 (bad usage), so scripts can tell partial work from none.
PARTLY_PLACED = 3


def _was_interrupted(failure: str) -> bool:
    return "interrupt" in failure.lower()


def _missing_clip_folder(config: settings.SorterConfig) -> str | None:
    """A CLIP model given as a path that is not there is a typo, not a hub id: say so before any work."""
    value = config.clip_model
    looks_like_path = value.startswith(("/", "~", "./", "../")) or os.sep + os.sep in value
    if config.backend in ("clip", "auto") and looks_like_path and not Path(value).expanduser().is_dir():
        return f"CLIP model folder not found: {value} (pass --clip-model with a folder that holds a saved model)"
    return None


def _sort_run_config(args: argparse.Namespace, out: Path, store: str) -> dict[str, Any]:
    from neural_sorter.defs.run_config import sort_run_config

    values = _option_values(args) | {"output_dir": str(out), "store": store, "force": True if args.force else None}
    if args.config:
        values["config_file"] = str(Path(args.config).expanduser().resolve())
    run_config = sort_run_config(values, {"retrain": True} if args.retrain else None)
    # One process for the whole run by default: a step per process would import torch eight times.
    run_config["execution"] = {"config": {"in_process": {}}}
    run_config["loggers"] = {"console": {"config": {"log_level": "DEBUG" if args.verbose else "CRITICAL"}}}
    return run_config


def _run_sort(instance, run_config: dict[str, Any], key: str, verbose: bool) -> tuple[str | None, str]:
    """Runs the job for one partition; (first failure or None, run id). stdout holds only the summary
    (``--json`` output parses): what libraries print goes to stderr with ``-v`` and nowhere without."""
    import dagster as dg

    from neural_sorter import run_records

    # execute_job, not execute_in_process: the latter keeps every step's output in memory for the whole
    # run (thumbnails, vectors), which on a 20,000-image folder is most of the run's peak memory.
    # The process tags let the next CLI start fail this run if this process is killed before its end.
    with (
        quiet_libraries(verbose),
        dg.execute_job(
            dg.reconstructable(sort_source_job_def),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": key, **run_records.process_tags()},
        ) as result,
    ):
        return (None if result.success else _first_failure(result)), result.run_id


@contextlib.contextmanager
def quiet_libraries(verbose: bool):
    """Without ``-v``: library prints ("Loaded pretrained weights for ..."), warnings (numba, umap, Dagster)
    and library log lines below ERROR are dropped; stage start lines and progress bars still show on stderr.
    With ``-v`` all of it goes to stderr. stdout is never touched."""
    import logging
    import warnings

    from neural_sorter import progress

    handler = progress.to_stderr()
    root = logging.getLogger()
    level = root.level
    try:
        with contextlib.ExitStack() as stack:
            if sys.stderr.isatty():
                stack.enter_context(_bars_on())
            if verbose:
                stack.enter_context(contextlib.redirect_stdout(sys.stderr))
            else:
                stack.enter_context(contextlib.redirect_stdout(open(os.devnull, "w")))  # noqa: SIM115
                stack.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
                root.setLevel(logging.ERROR)
            yield
    finally:
        root.setLevel(level)
        progress.LOGGER.removeHandler(handler)


@contextlib.contextmanager
def _bars_on():
    """Draws the stages' tqdm bars (files decoded / embedded, rate, ETA) on the terminal. They decide by
    ``isatty`` by default, and Dagster tees a step's output through a pipe to its compute log, so from inside
    a step stderr never looks like a terminal even when the CLI's is one."""
    from tqdm import tqdm

    original = tqdm.__init__

    def init(self, *args, **kwargs):
        if kwargs.get("disable", False) is None:
            kwargs["disable"] = False
        original(self, *args, **kwargs)

    tqdm.__init__ = init
    try:
        yield
    finally:
        tqdm.__init__ = original


def _duplicate_report(clusters) -> dict[str, Any]:
    """Copies of one picture found in the folder: counts, and each group with its representative."""
    if clusters is None or "is_representative" not in clusters:
        return {}
    from neural_sorter.duplicates import duplicate_summary

    grouped = clusters[clusters["duplicate_group"].notna()]
    groups = [
        {
            "group": str(group),
            "representative": str(members["representative"].iloc[0]),
            "copies": sorted(str(p) for p in members["relative_path"] if p != members["representative"].iloc[0]),
            "tiers": sorted({str(t) for t in members["duplicate_tier"].dropna()}),
        }
        for group, members in grouped.groupby("duplicate_group", sort=True)
    ]
    return {**duplicate_summary(clusters), "group_list": groups}


def _flag_report(clusters) -> dict[str, int]:
    """Files per quality flag (blurry, too_dark, ...)."""
    if clusters is None or "flags" not in clusters:
        return {}
    counts: dict[str, int] = {}
    for flags in clusters["flags"].fillna(""):
        for flag in filter(None, str(flags).split(",")):
            counts[flag] = counts.get(flag, 0) + 1
    return dict(sorted(counts.items()))


def _print_summary(summary: dict[str, Any]) -> None:
    """The end of a sort, for a person: where the files went, folder by folder, and how to take it back."""
    out = Path(summary["output"])
    dry = " (dry run: nothing placed, see manifest.dry-run.csv)" if summary.get("dry_run") else ""
    print(
        f"{summary['source']}: {summary['files']} files, {summary['decoded']} decoded, "
        f"{len(summary['failed'])} skipped; backend {summary['backend']} "
        f"({summary['embedded_new']} embedded, {summary['embedded_reused']} reused)"
    )
    print(f"sorted into {out}{dry}:")
    for name, size in sorted(summary["clusters"].items()):
        print(f"  {name + '/':<32} {size:>6} {'file' if size == 1 else 'files'}")
    for failure in summary["failed"][:20]:
        print(f"  skipped {failure['file']}: {failure['reason']}")
    if len(summary["failed"]) > 20:
        print(f"  skipped ... and {len(summary['failed']) - 20} more (see --json)")
    for problem in summary.get("placement_errors", [])[:20]:
        print(f"  not placed {problem['file']}: {problem['reason']}")
    for kept in summary.get("kept_edited", [])[:20]:
        print(f"  kept {kept['file']}: {kept['reason']}")
    copies = summary.get("duplicates") or {}
    if copies.get("groups"):
        print(
            f"duplicates: {copies['groups']} pictures with copies ({copies['exact_copies']} exact, "
            f"{copies['near_copies']} near copies)"
        )
    if summary.get("flagged"):
        print("flagged: " + ", ".join(f"{count} {flag}" for flag, count in summary["flagged"].items()))
    actions = ", ".join(f"{count} {action}" for action, count in sorted(summary.get("actions", {}).items()))
    manifest = out.parent / ".neural-sorter" / ("manifest.dry-run.csv" if summary.get("dry_run") else "manifest.csv")
    print(f"actions: {actions or 'none'}")
    print(f"manifest: {manifest}")
    print(f"undo: {summary['undo']}")


def cmd_undo(args: argparse.Namespace) -> int:
    """Reverts the last run of OUT. A run any of whose files could not be restored is NOT undone: its record
    is kept, each file is named with why, and the exit status is 1, so a later ``undo`` retries the rest."""
    from neural_sorter.reorganize import ManifestError, OutputBusyError, OutputDirError, undo_last

    try:
        out = args.out or settings.load_config(args.config).output_dir
    except settings.ConfigError as exc:
        return _fail(str(exc), 2)
    if not out:
        return _fail("which output folder? pass OUT or set output_dir in the config file", 2)
    try:
        report = undo_last(Path(out).expanduser().resolve())
    except (FileNotFoundError, OutputBusyError, OutputDirError, ManifestError) as exc:
        return _fail(str(exc))
    for record in report.passed_over:
        print(f"  passed over {record}: that run changed nothing (every file kept)")
    for path, reason in report.skipped:
        print(f"  left in place: {path}: {reason}")
    for path, reason in report.missing:
        print(f"  missing from OUT (renamed or removed there?): {path}: {reason}")
    for path, reason in report.failures:
        print(f"  NOT restored: {path}: {reason}", file=sys.stderr)
    if report.failures:
        return _fail(
            f"undo of {report.manifest} is incomplete: {len(report.failures)} file(s) not restored, "
            f"{report.reverted} reverted; the record is kept and `neural-sorter undo {out}` retries the rest"
        )
    print(
        f"undid {report.manifest}: {report.reverted} reverted, {len(report.skipped)} left in place, "
        f"{len(report.missing)} missing"
    )
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    """``sources add|list|remove``: one line per source, key, folder and output folder, tab-separated."""
    from neural_sorter.sources import PARTITIONS_NAME
    from neural_sorter.tables import ASSET_NAMES

    store = Store.default()
    registry = store.sources
    if args.action == "add":
        instance = _instance()
        for path in args.paths:
            folder = Path(settings.normalise_path(path))
            if not folder.is_dir():
                return _fail(f"{folder} is not a folder", 2)
            recorded = registry.record(partition_key_for(folder)).get("output_dir")
            out = recorded or default_output_dir(folder)
            if args.output_dir:
                out = settings.normalise_path(args.output_dir)
            key = registry.add(folder, output_dir=out)
            instance.add_dynamic_partitions(PARTITIONS_NAME, [key])
            print(f"{key}\t{folder}\t{out}")
    elif args.action == "remove":
        if not args.paths:
            return _fail("which source? pass its folder or its key (see `neural-sorter sources list`)", 2)
        instance = _instance()
        for item in args.paths:
            key = registry.remove(item)  # a key, or a folder however written (~, relative, symlink)
            if key is None:
                return _fail(f"{item} is not a registered source (see `neural-sorter sources list`)")
            if instance.has_dynamic_partition(PARTITIONS_NAME, key):
                instance.delete_dynamic_partition(PARTITIONS_NAME, key)
            if args.delete_data:
                for asset in ASSET_NAMES:
                    with contextlib.suppress(FileNotFoundError):
                        store.path(asset, key).unlink()
                print(f"removed {key} and its stored assets (its sorted folder is kept)")
            else:
                print(f"removed {key} (its stored assets and sorted folder are kept; --delete-data deletes the assets)")
    else:
        records = registry.records()
        try:
            for source in settings.load_config(args.config).sources:
                records.setdefault(partition_key_for(source), {"path": source + "  (config)"})
        except settings.ConfigError as exc:
            return _fail(str(exc), 2)
        for key, record in sorted(records.items()):
            out = record.get("output_dir") or default_output_dir(record["path"].removesuffix("  (config)"))
            print(f"{key}\t{record['path']}\t{out}")
    return 0


def _run_celery_sort(instance, config, args, key: str, out: Path, store: str) -> tuple[str | None, str]:
    """Runs the Celery job: every step on a worker, with the store, OUT and every option in the run config."""
    import dagster as dg

    from neural_sorter import run_records
    from neural_sorter.defs import distributed

    note = distributed.local_store_note(store)
    if note:
        print(f"neural-sorter: note: {note}", file=sys.stderr)
    level = "DEBUG" if args.verbose else "CRITICAL"
    run_config = distributed.celery_run_config(
        config, store, str(out), force=args.force, retrain=args.retrain, log_level=level
    )
    with (
        contextlib.redirect_stdout(sys.stderr),
        dg.execute_job(
            dg.reconstructable(distributed.sort_source_celery_job_def),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": key, **run_records.process_tags()},
        ) as result,
    ):
        if result.success:
            return None, result.run_id
        failure = _first_failure(result)
        return (distributed.run_failure(result) or failure if failure == "run failed" else failure), result.run_id


def cmd_worker(args: argparse.Namespace) -> int:
    from neural_sorter.defs import distributed

    try:
        options = settings.load_config(args.config).updated(
            celery_broker=args.celery_broker, celery_backend=args.celery_backend
        )
    except settings.ConfigError as exc:
        return _fail(str(exc), 2)
    queues = args.queue or [options.celery_queue]
    distributed.run_worker(options, queues, name=args.name, concurrency=args.concurrency, loglevel=args.loglevel)
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
    sort.add_argument(
        "--out",
        dest="output_dir",
        metavar="OUT",
        help="output folder (default: output_dir of the config file, else the one SRC was last sorted into, "
        "else SRC-sorted beside SRC)",
    )
    add_option_flags(sort, settings.SorterConfig, SORT_OPTIONS)
    sort.add_argument("--force", action="store_true", help="allow a non-empty OUT not made by neural-sorter")
    sort.add_argument("--retrain", action="store_true", help="retrain the autoencoder even if frames are unchanged")
    sort.add_argument("--json", action="store_true", help="print one JSON summary per source")
    sort.add_argument("-v", "--verbose", action="store_true", help="show Dagster's event log")
    sort.set_defaults(func=cmd_sort)

    undo = sub.add_parser("undo", help="revert the last reorganization of OUT")
    undo.add_argument("out", nargs="?", metavar="OUT")
    undo.set_defaults(func=cmd_undo)

    sources = sub.add_parser("sources", help="manage registered source folders (partitions)")
    sources.add_argument("action", choices=["add", "list", "remove"])
    sources.add_argument("paths", nargs="*", metavar="PATH_OR_KEY")
    sources.add_argument("--out", dest="output_dir", metavar="OUT", help="add: where the folder's sorted tree goes")
    sources.add_argument(
        "--delete-data", action="store_true", help="remove: delete its stored assets too (sorted folders are kept)"
    )
    sources.set_defaults(func=cmd_sources)

    add_option_flags(sort, settings.ExecutorOptions, EXECUTOR_OPTIONS)

    worker = sub.add_parser("worker", help="run a Celery worker for the pipeline's steps (README 'Scaling out')")
    worker.add_argument(
        "--queue", "-q", type=_comma_list, metavar="A,B", help="queues to consume (default: celery_queue, 'dagster')"
    )
    worker.add_argument("--name", "-n", help="worker name (default: neural-sorter-<queues>)")
    worker.add_argument("--concurrency", type=int, default=1, help="steps run at once (default 1)")
    worker.add_argument("--loglevel", default="INFO")
    add_option_flags(worker, settings.ExecutorOptions, ("celery_broker", "celery_backend"))
    worker.set_defaults(func=cmd_worker)

    view = sub.add_parser("view", help="open the 3D viewer")
    view.add_argument("--home", help="neural-sorter home (default $NEURAL_SORTER_HOME)")
    view.add_argument("--host", default="127.0.0.1")
    view.add_argument("--port", type=int, default=8050)
    view.set_defaults(func=cmd_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    try:
        return args.func(args)
    except settings.ConfigError as exc:
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # every failure in one line; the trace only with -v
        if getattr(args, "verbose", False):
            raise
        text = str(exc).strip().splitlines()
        return _fail(f"{type(exc).__name__}: {text[-1] if text else 'failed'} (run with -v for the trace)")


if __name__ == "__main__":
    sys.exit(main())
