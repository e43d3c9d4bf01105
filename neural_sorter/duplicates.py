"""Duplicates in three tiers: exact copies (same bytes), near duplicates (the same picture resized, re-encoded,
cropped a little, rotated by 90°, mirrored, lightly colour-adjusted or in another format) and merely similar
pictures, from the vectors the pipeline already has plus a perceptual hash of the stored thumbnails.

How a near duplicate is found, without any n x n matrix:

1. Byte-identical files (same content hash) are one point from here on: they are the exact tier.
2. Candidate pairs are each picture's ``neighbours`` nearest others by embedding cosine (chunked dot
   products, PCA-reduced above ``PCA_ABOVE`` pictures) plus its nearest others by a rotation- and
   mirror-invariant descriptor of the thumbnail (the magnitudes of its low DCT frequencies), so a copy turned
   by 90° that the CNN no longer sees as close is still a candidate.
3. Each candidate pair gets a similarity in [0, 1]: the larger of the embedding cosine and the agreement of
   the perceptual hashes (64-bit DCT hash, compared against all eight rotations/mirrors of the other picture:
   the share of bits that agree, ``1 - distance / 64``; unrelated pictures agree on about half). The hash
   is what catches rotations and mirrors; the embedding is what catches crops and colour changes the hash misses.
4. Pairs at or above ``near_threshold`` are joined (union-find) into groups.

Every group has a representative, the copy to keep: the largest resolution, then the least compressed (most
bytes per pixel), then the oldest (mtime), then the path. ``bench/duplicates.py`` measures the tiers against
imagededup and cleanvision on a labelled set and chose the defaults.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

DuplicateAction = Literal["keep", "separate", "skip"]

# Above this many distinct pictures the embedding neighbour search runs on a 128-d PCA projection (exact
# cosines are still computed for the candidate pairs), which keeps the chunked search affordable at 100k files.
PCA_ABOVE = 20_000
HASH_BITS = 64

DUPLICATE_COLUMNS = [
    "relative_path",
    "content_hash",
    "duplicate_group",
    "duplicate_tier",
    "is_representative",
    "group_size",
    "representative",
    "similarity",
    "hash_distance",
    "similar_to",
    "similar_score",
]


class DuplicateOptions(BaseModel):
    """How copies of the same picture are found and what happens to them."""

    model_config = ConfigDict(extra="forbid")

    near_threshold: float = Field(
        0.88,
        ge=0.0,
        le=1.0,
        description="Similarity (0-1) at or above which two different files are the same picture (near duplicates).",
    )
    similar_threshold: float = Field(
        0.80, ge=0.0, le=1.0, description="Similarity at or above which a picture is reported as merely similar."
    )
    duplicates: DuplicateAction = Field(
        "separate",
        description=(
            "keep: place every copy in its cluster; separate: the representative in its cluster, the other copies "
            "in _duplicates/<group>/; skip: place only representatives."
        ),
    )
    review: bool = Field(
        False, description="Place files with a quality flag in _review/<reason>/ instead of a cluster."
    )
    use_hash: bool = Field(True, description="Use the perceptual hash of the thumbnails as well as the embeddings.")
    neighbours: int = Field(10, ge=1, le=100, description="Candidate neighbours per picture and per signal.")


# ----------------------------------------------------------------------------------------------- signatures


@dataclass(frozen=True)
class Signatures:
    """Per distinct picture: ``hashes`` (n, 8) uint64 perceptual hashes of the 8 rotations/mirrors (row 0 is
    the picture as it is) and ``descriptor`` (n, 35) float32, unit, invariant to rotations and mirrors."""

    hashes: np.ndarray
    descriptor: np.ndarray


_DIHEDRAL = [
    lambda a: a,
    lambda a: np.rot90(a, 1),
    lambda a: np.rot90(a, 2),
    lambda a: np.rot90(a, 3),
    lambda a: a[:, ::-1],
    lambda a: a[::-1, :],
    lambda a: a.T,
    lambda a: np.rot90(a, 2).T,
]
_UPPER = [(u, v) for u in range(8) for v in range(u, 8) if (u, v) != (0, 0)]


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_D32 = _dct_matrix(32)


def grey_32(thumbnail: bytes) -> np.ndarray:
    """The thumbnail as a 32x32 float greyscale array (JPEG draft decoding: a fraction of a full decode)."""
    from PIL import Image

    with Image.open(io.BytesIO(thumbnail)) as image:
        image.draft("L", (64, 64))
        grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS)
        return np.asarray(grey, dtype=np.float32)


def signature(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(8 dihedral 64-bit pHashes, 35-d invariant descriptor) of a 32x32 greyscale array."""
    hashes = np.empty(8, dtype=np.uint64)
    for i, op in enumerate(_DIHEDRAL):
        low = (_D32 @ np.ascontiguousarray(op(grey)) @ _D32.T)[:8, :8]
        bits = (low > np.median(low)).ravel()
        hashes[i] = np.packbits(bits).view(">u8")[0]
    low = (_D32 @ grey @ _D32.T)[:8, :8]
    desc = np.array([np.hypot(low[u, v], low[v, u]) if u != v else abs(low[u, v]) for u, v in _UPPER], np.float32)
    norm = float(np.linalg.norm(desc))
    return hashes, desc / norm if norm > 0 else desc


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)  # pragma: no cover


def hash_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits between pictures ``a`` and ``b`` ((m, 8) hashes each, row-aligned), the smallest over the 8
    rotations/mirrors of ``b``."""
    return _popcount(a[:, :1] ^ b).min(axis=1).astype(np.int64)


def thumbnail_signatures(thumbnails: Iterable[tuple[str, bytes]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """relative path -> signature, for (relative path, JPEG thumbnail) pairs (the first frame of each file)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for path, data in thumbnails:
        if path in out or data is None:
            continue
        try:
            out[path] = signature(grey_32(data))
        except Exception:  # an unreadable thumbnail only loses the hash signal for that file
            continue
    return out


# ----------------------------------------------------------------------------------------------- search


def top_k(x: np.ndarray, k: int, memory_floats: int = 1 << 25) -> tuple[np.ndarray, np.ndarray]:
    """(indices, dot products) of each row's ``k`` largest dot products with the other rows, in row chunks
    of at most ``memory_floats`` products at a time."""
    n = len(x)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
    chunk = max(1, memory_floats // max(1, n))
    index = np.empty((n, k), dtype=np.int64)
    value = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        block = x[start : start + chunk] @ x.T
        rows = np.arange(len(block))
        block[rows, start + rows] = -np.inf
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        index[start : start + chunk] = part
        value[start : start + chunk] = np.take_along_axis(block, part, axis=1)
    return index, value


def _search_space(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    if len(vectors) <= PCA_ABOVE or vectors.shape[1] <= 128:
        return vectors
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(len(vectors), size=min(len(vectors), 10_000), replace=False)]
    reduced = PCA(128, random_state=seed).fit(sample).transform(vectors).astype(np.float32)
    return reduced / np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def pair_similarity(cosine: np.ndarray, bits: np.ndarray | None) -> np.ndarray:
    """The near-duplicate similarity of pairs: the larger of the embedding cosine and the share of hash bits
    that agree, ``1 - bits / 64`` (unrelated pictures agree on about half)."""
    sim = np.clip(cosine, 0.0, 1.0)
    if bits is not None:
        sim = np.maximum(sim, np.clip(1.0 - bits / HASH_BITS, 0.0, 1.0))
    return sim


def candidate_pairs(
    vectors: np.ndarray, descriptors: np.ndarray | None, neighbours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unique (i < j) candidate pairs of distinct pictures: embedding neighbours, plus descriptor neighbours."""
    pairs = []
    for space in (_search_space(vectors), descriptors):
        if space is None or len(space) < 2:
            continue
        index, _ = top_k(space, neighbours)
        rows = np.repeat(np.arange(len(space)), index.shape[1])
        pairs.append(np.stack([rows, index.ravel()], axis=1))
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    both = np.sort(np.concatenate(pairs), axis=1)
    both = np.unique(both[both[:, 0] != both[:, 1]], axis=0)
    return both[:, 0], both[:, 1]


# ----------------------------------------------------------------------------------------------- groups


def _quality_key(manifest: pd.DataFrame) -> pd.DataFrame:
    """Per relative path: the sort key of the representative (smaller is better)."""
    m = manifest.set_index("relative_path")
    width = pd.to_numeric(m["width"], errors="coerce").fillna(0).astype(float)
    height = pd.to_numeric(m["height"], errors="coerce").fillna(0).astype(float)
    size = pd.to_numeric(m["size"], errors="coerce").fillna(0).astype(float)
    pixels = width * height
    bpp = np.where(pixels > 0, size / pixels.replace(0, np.nan), 0.0)
    mtime = pd.to_numeric(m["mtime_ns"], errors="coerce").fillna(np.iinfo(np.int64).max).astype(float)
    return pd.DataFrame({"k_pixels": -pixels, "k_bpp": -np.nan_to_num(bpp), "k_mtime": mtime}, index=m.index)


def find_duplicates(
    embeddings: pd.DataFrame,
    manifest: pd.DataFrame,
    thumbnails: Iterable[tuple[str, bytes]] | dict[str, tuple[np.ndarray, np.ndarray]] | None,
    options: DuplicateOptions | None = None,
) -> pd.DataFrame:
    """One row per row of ``embeddings`` (columns ``DUPLICATE_COLUMNS``).

    ``manifest`` is the ``file_manifest`` table (size, mtime_ns, width, height choose the representative);
    ``thumbnails`` yields (relative path, JPEG thumbnail) of each file's first frame (e.g. the store's thumbnail
    stream zipped with the paths), or is the ready ``thumbnail_signatures`` of them, or None to use the
    embeddings alone.

    Columns: ``duplicate_group`` (``dup-`` + the smallest content hash of the group; None when the file has no
    copy), ``duplicate_tier`` (``exact`` for a byte-identical copy of the representative, ``near`` for another
    copy, the representative taking ``exact`` only when all its copies are byte-identical; ``similar`` for an
    ungrouped file whose nearest other picture scores ``similar_threshold`` or more; else None),
    ``is_representative`` (True for the copy to keep and for every ungrouped file), ``group_size`` (files in
    the group, 1 when none), ``representative`` (its relative path), ``similarity`` (to the representative, 1.0
    for itself and for byte copies), ``hash_distance`` (bits to the representative, -1 without hashes),
    ``similar_to`` / ``similar_score`` (the most similar picture outside the group, for "more like this").
    """
    options = options or DuplicateOptions()
    table = embeddings[["relative_path", "content_hash"]].reset_index(drop=True)
    n_files = len(table)
    if n_files == 0:
        return pd.DataFrame(columns=DUPLICATE_COLUMNS)

    # 1. exact tier: one point per content hash
    codes, uniques = pd.factorize(table["content_hash"])
    first = pd.Series(np.arange(n_files)).groupby(codes).first().to_numpy()
    vectors = np.stack(embeddings["vector"].to_numpy()[first]).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    n = len(uniques)

    # 2. signatures of the thumbnails, per distinct picture
    hashes = descriptors = None
    if options.use_hash and thumbnails is not None:
        sigs = thumbnails if isinstance(thumbnails, dict) else thumbnail_signatures(thumbnails)
        path_of = table["relative_path"].to_numpy()
        by_code: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for row, code in enumerate(codes):
            if code not in by_code and path_of[row] in sigs:
                by_code[int(code)] = sigs[path_of[row]]
        hashes = np.zeros((n, 8), dtype=np.uint64)
        descriptors = np.zeros((n, len(_UPPER)), dtype=np.float32)
        has_hash = np.zeros(n, dtype=bool)
        for code, (h, d) in by_code.items():
            hashes[code], descriptors[code], has_hash[code] = h, d, True

    # 3. candidate pairs and their similarity
    a, b = candidate_pairs(vectors, descriptors, options.neighbours)
    cosine = np.einsum("ij,ij->i", vectors[a], vectors[b]) if len(a) else np.zeros(0, np.float32)
    bits = None
    if hashes is not None:
        bits = hash_distance(hashes[a], hashes[b]).astype(np.float64)
        bits[~(has_hash[a] & has_hash[b])] = HASH_BITS  # no hash: the embedding decides alone
    sim = pair_similarity(cosine, bits)

    # 4. groups of distinct pictures
    uf = _UnionFind(n)
    near = sim >= options.near_threshold
    for i, j in zip(a[near], b[near]):
        uf.union(int(i), int(j))
    root = np.array([uf.find(i) for i in range(n)])

    # representative: per group of files, the best by resolution, bytes per pixel, age, path
    keys = _quality_key(manifest).reindex(table["relative_path"])
    files = pd.DataFrame(
        {
            "row": np.arange(n_files),
            "code": codes,
            "root": root[codes],
            "k_pixels": keys["k_pixels"].fillna(0).to_numpy(),
            "k_bpp": keys["k_bpp"].fillna(0).to_numpy(),
            "k_mtime": keys["k_mtime"].fillna(np.inf).to_numpy(),
            "path": table["relative_path"].to_numpy(),
        }
    )
    files = files.sort_values(["root", "k_pixels", "k_bpp", "k_mtime", "path"])
    rep_row = files.groupby("root")["row"].first()
    group_size = files.groupby("root").size()
    distinct = files.groupby("root")["code"].nunique()
    smallest_hash = files.groupby("root")["code"].agg(lambda c: min(uniques[c]))

    rep_of_file = rep_row.reindex(root[codes]).to_numpy()
    rep_code = codes[rep_of_file]
    size_of_file = group_size.reindex(root[codes]).to_numpy()
    grouped = size_of_file > 1
    pair_sim = _pair_lookup(a, b, sim)
    similarity = np.array(
        [
            1.0 if c == rc else pair_sim.get((min(c, rc), max(c, rc)), float(vectors[c] @ vectors[rc]))
            for c, rc in zip(codes, rep_code)
        ]
    )
    if hashes is not None:
        hd = hash_distance(hashes[codes], hashes[rep_code])
        hd[~(has_hash[codes] & has_hash[rep_code])] = -1
    else:
        hd = np.full(n_files, -1)
    is_rep = np.arange(n_files) == rep_of_file
    all_exact = distinct.reindex(root[codes]).to_numpy() == 1
    tier = np.where(codes == rep_code, np.where(is_rep & ~all_exact, "near", "exact"), "near").astype(object)

    # merely similar: the best candidate outside the group
    best_other, best_sim = _best_outside(a, b, sim, root, n)
    similar_to = np.array(
        [table["relative_path"].iat[first[o]] if o >= 0 else None for o in best_other[codes]], dtype=object
    )
    similar_score = np.where(best_other[codes] >= 0, best_sim[codes], np.nan)
    tier[~grouped] = np.where(similar_score[~grouped] >= options.similar_threshold, "similar", None)

    out = pd.DataFrame(
        {
            "relative_path": table["relative_path"],
            "content_hash": table["content_hash"],
            "duplicate_group": np.where(
                grouped, "dup-" + smallest_hash.reindex(root[codes]).astype(str).str[:16].to_numpy(), None
            ),
            "duplicate_tier": tier,
            "is_representative": is_rep | ~grouped,
            "group_size": size_of_file.astype(np.int64),
            "representative": np.where(grouped, table["relative_path"].to_numpy()[rep_of_file], table["relative_path"]),
            "similarity": np.where(grouped, similarity, 1.0).astype(np.float32),
            "hash_distance": np.where(grouped, hd, -1).astype(np.int64),
            "similar_to": similar_to,
            "similar_score": similar_score.astype(np.float32),
        }
    )
    out["duplicate_group"] = out["duplicate_group"].astype(object).where(grouped, None)
    return out[DUPLICATE_COLUMNS]


def _pair_lookup(a: np.ndarray, b: np.ndarray, sim: np.ndarray) -> dict[tuple[int, int], float]:
    return {(int(i), int(j)): float(s) for i, j, s in zip(a, b, sim)}


def _best_outside(
    a: np.ndarray, b: np.ndarray, sim: np.ndarray, root: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct picture: the most similar candidate in another group (-1 if none) and its similarity."""
    best = np.full(n, -1, dtype=np.int64)
    score = np.full(n, -np.inf)
    outside = root[a] != root[b]
    for i, j, s in zip(a[outside], b[outside], sim[outside]):
        if s > score[i]:
            best[i], score[i] = j, s
        if s > score[j]:
            best[j], score[j] = i, s
    return best, score


def duplicate_summary(table: pd.DataFrame) -> dict[str, int]:
    """Counts for reports: groups, files in groups, exact and near copies beyond the representatives."""
    grouped = table[table["duplicate_group"].notna()]
    extra = grouped[~grouped["is_representative"]]
    return {
        "groups": int(grouped["duplicate_group"].nunique()),
        "files_in_groups": len(grouped),
        "exact_copies": int((extra["duplicate_tier"] == "exact").sum()),
        "near_copies": int((extra["duplicate_tier"] == "near").sum()),
        "similar": int((table["duplicate_tier"] == "similar").sum()),
    }
