"""Clustering and projection at scale: time and peak memory on synthetic embeddings.

    python bench/scale.py [--n 100000] [--dim 512] [--methods kmeans,hierarchical,hdbscan]
                          [--projections umap,pca,tsne] [--timeout 900]

Writes synthetic L2-normalised embeddings with clustered structure (``--clusters`` centres of unequal size,
plus ``--noise`` share of scattered points) to a .npy file, then runs each clustering method
(``cluster_embeddings``: the whole ``clusters`` stage, naming and sortable codes included) and each
projection (``project_3d``) in a fresh subprocess, so one run's peak memory never counts for the next. Peak
RSS is ``ru_maxrss`` of that subprocess, i.e. it includes Python, the libraries and the input matrix (the
"base" column is the RSS just before the method started). ``kmeans+umap`` runs both in one process, as the
pipeline does. Targets (2 cores): k-means (k auto) + UMAP <= 3 min and 3 GB; HDBSCAN <= 5 min.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLUSTER_METHODS = ("kmeans", "hierarchical", "hdbscan")
PROJECTIONS = ("umap", "pca", "tsne")


def synthetic_embeddings(n: int, dim: int, clusters: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``clusters`` random centres (sizes drawn from a Dirichlet, so unequal), each cluster
    with a few sub-directions of its own (like sub-styles), plus a ``noise`` share of scattered points
    (label -1). Within-cluster cosine to the centre is about 0.75, between centres about 0, roughly what
    image embeddings of distinct subjects look like."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    scattered = int(n * noise)
    sizes = rng.multinomial(n - scattered, rng.dirichlet(np.full(clusters, 2.0)))
    out = np.empty((n, dim), dtype=np.float32)
    labels = np.full(n, -1, dtype=np.int32)
    start = 0
    for c, size in enumerate(sizes):
        subs = rng.normal(size=(4, dim)).astype(np.float32) / np.sqrt(dim)
        which = rng.integers(0, 4, size)
        block = centres[c] + 0.5 * subs[which] + rng.normal(size=(size, dim)).astype(np.float32) * (0.8 / np.sqrt(dim))
        out[start : start + size] = block
        labels[start : start + size] = c
        start += size
    out[start:] = rng.normal(size=(scattered, dim)).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    order = rng.permutation(n)
    return out[order], labels[order]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(task: str, data: Path, k: str, seed: int) -> dict[str, object]:
    """Runs one task in this (fresh) process; returns its figures."""
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    from neural_sorter import clustering
    from neural_sorter.projection import project_3d

    vectors = np.load(data)
    truth = np.load(data.with_suffix(".labels.npy"))
    table = pd.DataFrame(
        {
            "relative_path": [f"f{i:06d}.jpg" for i in range(len(vectors))],
            "content_hash": [f"h{i}" for i in range(len(vectors))],
            "category_probs": None,
        }
    )
    timings: dict[str, float] = {}

    def timed(name: str, fn):  # records the time of the algorithm inside the stage
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = round(time.perf_counter() - started, 1)

        return wrapper

    for name in ("kmeans", "hierarchical", "hdbscan_clusters", "leaf_order"):
        setattr(clustering, name, timed(name, getattr(clustering, name)))
    base = current_rss_mb()
    result: dict[str, object] = {"task": task, "n": len(vectors), "dim": vectors.shape[1], "base_rss_mb": round(base)}
    started = time.perf_counter()
    for step in task.split("+"):
        step_started = time.perf_counter()
        if step in CLUSTER_METHODS:
            k_value: int | str = k if k == "auto" else int(k)
            labels_table, cluster = clustering.cluster_embeddings(
                table, vectors, step, k_value, (2, 12), 5, [], 1.0, seed
            )
            labels = labels_table["cluster_id"].to_numpy()
            result.update(
                clusters=int(cluster.chosen_k),
                noise=int((labels < 0).sum()),
                ari_vs_truth=round(float(adjusted_rand_score(truth, labels)), 3),
                silhouette=None if cluster.silhouette is None else round(cluster.silhouette, 3),
                details={k: v for k, v in cluster.details.items() if k != "silhouette_by_k"},
            )
        else:
            coords, used = project_3d(vectors, step, seed)
            assert coords.shape == (len(vectors), 3) and np.isfinite(coords).all()
            result["projection_used"] = used
        timings[f"{step} (stage)"] = round(time.perf_counter() - step_started, 1)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb"] = round(peak_rss_mb())
    result["timings"] = timings
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.05, help="share of scattered points")
    parser.add_argument("--k", default="auto", help="k for kmeans/hierarchical (default auto over 2..12)")
    parser.add_argument("--methods", default=",".join(CLUSTER_METHODS))
    parser.add_argument("--projections", default=",".join(PROJECTIONS))
    parser.add_argument("--combined", default="kmeans+umap", help="tasks run together in one process ('' = none)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per task before it is stopped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "neural-sorter-bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.child, args.data, args.k, args.seed)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = args.workdir / f"embeddings-{args.n}x{args.dim}-c{args.clusters}-s{args.seed}.npy"
    if not data.exists():
        vectors, labels = synthetic_embeddings(args.n, args.dim, args.clusters, args.noise, args.seed)
        np.save(data, vectors)
        np.save(data.with_suffix(".labels.npy"), labels)
    print(
        f"data: {args.n} x {args.dim} float32 ({args.n * args.dim * 4 / 2**20:.0f} MB), {args.clusters} clusters, "
        f"{args.noise:.0%} scattered; cores: {os.cpu_count()}; load average: {os.getloadavg()}"
    )
    tasks = [m for m in args.methods.split(",") if m] + [p for p in args.projections.split(",") if p]
    if args.combined:
        tasks.append(args.combined)
    results = []
    for task in tasks:
        command = [
            sys.executable,
            __file__,
            "--child",
            task,
            "--data",
            str(data),
            "--k",
            args.k,
            "--seed",
            str(args.seed),
        ]
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
        except subprocess.TimeoutExpired:
            print(f"{task:>14}: did not finish within {args.timeout:.0f} s (stopped)", flush=True)
            results.append({"task": task, "timeout": args.timeout})
            continue
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            print(f"{task:>14}: failed after {time.perf_counter() - started:.0f} s: {tail[0]}", flush=True)
            results.append({"task": task, "error": tail[0]})
            continue
        result = json.loads(lines[-1])
        results.append(result)
        extra = {
            k: v
            for k, v in result.items()
            if k not in ("task", "n", "dim", "seconds", "peak_rss_mb", "base_rss_mb", "timings")
        }
        print(
            f"{task:>14}: {result['seconds']:7.1f} s  peak RSS {result['peak_rss_mb'] / 1024:5.2f} GB "
            f"(base {result['base_rss_mb']} MB)  {result['timings']}  {extra}",
            flush=True,
        )
    by_task = {r["task"]: r for r in results}
    targets = [("kmeans+umap", 180, 3072), ("hdbscan", 300, None)]
    for task, seconds, megabytes in targets:
        r = by_task.get(task)
        if not r or "seconds" not in r:
            print(f"target {task}: not measured")
            continue
        ok = r["seconds"] <= seconds and (megabytes is None or r["peak_rss_mb"] <= megabytes)
        limit = f"<= {seconds} s" + (f" and {megabytes / 1024:.0f} GB" if megabytes else "")
        verdict = "met" if ok else "MISSED"
        print(f"target {task} {limit}: {r['seconds']} s, {r['peak_rss_mb'] / 1024:.2f} GB -> {verdict}")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
