"""``ViewerStore``: the store as the viewer sees it (partitions, sources, versions) and the caches in front of it.

Every path, listing and read goes through ``neural_sorter.store.Store``; asset names come from
``neural_sorter.tables``. Caches are ``cachetools`` caches: file stamps and the listing are trusted for
``stat_ttl`` seconds, partitions, thumbnail indexes and small thumbnails are kept least-recently-used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import datetime, timezone
from typing import Any

from cachetools import LRUCache, TTLCache
from upath import UPath

from dash_viewer.data.corrections import Resorter, correction_rows, preview
from dash_viewer.data.partition import Materialization, PartitionData
from dash_viewer.data.provenance import RunLookup
from dash_viewer.data.tables import build_partition
from dash_viewer.data.thumbnails import SMALL_THUMBNAIL, StaleFile, Stamp, Thumbnails, shrink_jpeg
from neural_sorter import corrections
from neural_sorter.store import Store
from neural_sorter.tables import CLIP_MODEL, CLUSTERS, DECODED_FRAMES, EMBEDDINGS, FILE_MANIFEST, PROJECTION_3D

log = logging.getLogger(__name__)

#: The assets one partition's view is built from (``decoded_frames`` is read separately, and only on demand).
VIEW_ASSETS = (PROJECTION_3D, EMBEDDINGS, CLUSTERS, CLIP_MODEL, FILE_MANIFEST)
#: Thumbnail indexes kept: thumbnails are the big column, so at most two partitions.
THUMBNAIL_INDEXES = 2
#: The stamp-cache key of a partition's corrections file (part of its version).
CORRECTIONS = "corrections"
SMALL_THUMBNAILS = 4096


class _Timed:
    """A value per key trusted for ``ttl`` seconds (not at all when ``ttl`` is 0), safe across threads."""

    def __init__(self, ttl: float, maxsize: int = 4096) -> None:
        self._cache: TTLCache | None = TTLCache(maxsize=maxsize, ttl=ttl) if ttl > 0 else None
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Any) -> Any:
        if self._cache is None:
            return compute()
        with self._lock:
            try:
                return self._cache[key]
            except KeyError:  # never seen, or expired
                pass
        value = compute()
        with self._lock:
            self._cache[key] = value
        return value

    def forget(self, key: Any) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.pop(key, None)


class ViewerStore:
    """Read-only access to a neural-sorter store for the viewer, with caches keyed by table stamps.

    ``stat_ttl`` bounds how often stamps are re-read (one ``stat`` per table per second at most), which keeps
    hundreds of thumbnail requests cheap even on an object store.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | UPath | Store | None = None,
        *,
        stat_ttl: float = 1.0,
        run_lookup: bool = True,
        max_partitions: int = 3,
        prefetch_vectors: bool = True,
    ) -> None:
        self.store = store if isinstance(store, Store) else (Store.default() if store is None else Store(store))
        self.root = self.store.root
        self.stat_ttl = stat_ttl
        self.max_partitions = max_partitions
        self.prefetch_vectors = prefetch_vectors
        self.runs = RunLookup(run_lookup)
        self._lock = threading.RLock()
        self._stamps = _Timed(stat_ttl)
        self._listing = _Timed(stat_ttl, maxsize=1)
        self._data: LRUCache[str, PartitionData] = LRUCache(maxsize=max_partitions)
        self._thumbs: LRUCache[str, Thumbnails] = LRUCache(maxsize=THUMBNAIL_INDEXES)
        self._small: LRUCache[tuple[str, str, int], bytes] = LRUCache(maxsize=SMALL_THUMBNAILS)
        self.resorter = Resorter(str(self.root))

    # ------------------------------------------------------------------ listing, stamps and versions

    def stamp(self, asset: str, key: str) -> Stamp | None:
        """The table's (mtime, size), None when it does not exist; trusted for ``stat_ttl`` seconds."""
        return self._stamps.get((asset, key), lambda: self.store.stamp(asset, key))

    def partitions(self) -> list[str]:
        """Partition keys that have a ``3d_projection``, most recently materialized first."""
        return list(self._listing.get("partitions", self._list_partitions))

    def _list_partitions(self) -> list[str]:
        try:
            keys = self.store.keys(PROJECTION_3D)
        except OSError as exc:
            log.warning("cannot list %s: %s", self.root / PROJECTION_3D, exc)
            keys = []
        stamps = {k: self.stamp(PROJECTION_3D, k) for k in keys}
        return sorted((k for k in keys if stamps[k] is not None), key=lambda k: (-stamps[k][0], k))  # type: ignore[index]

    def is_partition(self, key: object) -> bool:
        """Only keys found in the store are ever turned into paths (no traversal through a crafted key)."""
        return isinstance(key, str) and key in self.partitions()

    def sources(self) -> dict[str, str]:
        """Partition key -> source folder, from the store's source registry (display only; never opened)."""
        try:
            entries = self.store.sources.entries()
            return {str(k): str(v) for k, v in entries.items()} if isinstance(entries, dict) else {}
        except (OSError, ValueError) as exc:
            log.warning("cannot read the source registry: %s", exc)
            return {}

    def fingerprint(self, key: str) -> tuple[Stamp | None, ...]:
        tables = tuple(self.stamp(asset, key) for asset in VIEW_ASSETS)
        return (*tables, self._stamps.get((CORRECTIONS, key), lambda: corrections.corrections_stamp(self.store, key)))

    def tables_version(self, key: str) -> str:
        """Like ``version`` but only the materialized tables: unchanged when only the corrections changed."""
        stamps = tuple(self.stamp(asset, key) for asset in VIEW_ASSETS)
        return hashlib.sha1(repr(stamps).encode()).hexdigest()[:12]

    def version(self, key: str) -> str:
        """A short token that changes whenever any table behind the partition's view changes."""
        return hashlib.sha1(repr(self.fingerprint(key)).encode()).hexdigest()[:12]

    # ------------------------------------------------------------------ partitions

    def load(self, key: str) -> PartitionData:
        """The partition's data, re-read only when one of its tables changed since the cached copy."""
        if not self.is_partition(key):
            raise KeyError(key)
        with self._lock:
            # one read of the stamps for both tokens: a table written between two reads would otherwise give a
            # version of the old tables with the tables token of the new ones
            stamps = self.fingerprint(key)
            version = hashlib.sha1(repr(stamps).encode()).hexdigest()[:12]
            cached = self._data.get(key)
            if cached is not None and cached.version == version:
                return cached
            stamp = self.stamp(PROJECTION_3D, key)
            updated = datetime.fromtimestamp(stamp[0] if stamp else 0, tz=timezone.utc)
            data = build_partition(self.store, key, version, updated, self.sources().get(key))
            data.tables_version = hashlib.sha1(repr(stamps[:-1]).encode()).hexdigest()[:12]
            data.points = preview(data.points, self.corrections(key))
            if self.prefetch_vectors:  # ready by the time someone clicks, without delaying the first paint
                threading.Thread(target=data._vector_pair, name=f"vectors-{key}", daemon=True).start()
            self._data[key] = data
            return data

    # ------------------------------------------------------------------ hand corrections

    def corrections(self, key: str) -> list[dict[str, Any]]:
        """The partition's stored corrections (``neural_sorter.corrections``), oldest first."""
        try:
            return corrections.load_corrections(self.store, key)
        except (OSError, ValueError) as exc:
            log.warning("cannot read the corrections of %s: %s", key, exc)
            return []

    def correction_rows(self, key: str) -> list[dict[str, Any]]:
        """The corrections for the list: text, and pending until a ``clusters`` run after them."""
        written = self.store.stamp(CLUSTERS, key)
        return correction_rows(self.corrections(key), written[0] if written else None)

    def add_correction(self, key: str, correction: dict[str, Any]) -> None:
        if not self.is_partition(key):
            raise KeyError(key)
        corrections.add_correction(self.store, key, correction)
        self._stamps.forget((CORRECTIONS, key))

    def remove_correction(self, key: str, correction_id: str) -> None:
        if not self.is_partition(key):
            raise KeyError(key)
        corrections.remove_correction(self.store, key, correction_id)
        self._stamps.forget((CORRECTIONS, key))

    def resort(self, key: str) -> str | None:
        """Starts ``neural-sorter sort`` for the partition's source folder; None when started, else why not."""
        source = self.sources().get(key) if self.is_partition(key) else None
        if not source:
            return "This partition's source folder is not registered, so it cannot be re-sorted from here."
        if not self.resorter.start(key, source):
            return "A re-sort of this folder is already running."
        return None

    # ------------------------------------------------------------------ thumbnails

    def thumbnail(self, key: str, idx: int, version: str | None = None, small: bool = False) -> bytes | None:
        """JPEG bytes for point ``idx`` of partition ``key``; None for anything unknown or stale.

        ``version`` is the token the page was rendered with: an id from an older materialization may now name
        another file, so a stale one gets nothing rather than the wrong picture.
        """
        if not self.is_partition(key):
            return None
        data = self.load(key)
        if version is not None and version != data.version:
            return None
        if data.valid_id(idx) is None:
            return None
        jpeg = self._thumbnail_bytes(key, str(data.points["relative_path"].iat[idx]))
        if jpeg is None or not small:
            return jpeg
        cache_key = (key, data.version, int(idx))
        with self._lock:
            hit = self._small.get(cache_key)
        if hit is not None:
            return hit
        resized = shrink_jpeg(jpeg, SMALL_THUMBNAIL)
        with self._lock:
            self._small[cache_key] = resized
        return resized

    def _thumbnails(self, key: str) -> Thumbnails:
        """The thumbnail index of ``decoded_frames``, built on the first thumbnail request for a partition."""
        with self._lock:
            stamp = self.stamp(DECODED_FRAMES, key)
            cached = self._thumbs.get(key)
            if cached is not None and cached.stamp == stamp:
                return cached
            thumbs = Thumbnails(self.store, key, stamp)
            self._thumbs[key] = thumbs
            return thumbs

    def _thumbnail_bytes(self, key: str, relative_path: str) -> bytes | None:
        """A file's JPEG; when ``decoded_frames`` is replaced mid-read, re-index once with a fresh stamp."""
        for attempt in range(2):
            try:
                return self._thumbnails(key).get(relative_path)
            except StaleFile:
                with self._lock:
                    self._thumbs.pop(key, None)
                    self._stamps.forget((DECODED_FRAMES, key))
                if attempt:
                    return None
        return None

    # ------------------------------------------------------------------ provenance

    def warm(self) -> None:
        """Loads the newest partition and its run id before the first page view (importing Dagster alone
        takes seconds); meant for a background thread, so errors are only logged."""
        try:
            keys = self.partitions()
            if keys:
                self.materialization(keys[0])
        except Exception as exc:
            log.warning("could not preload the newest partition: %s", exc)

    def materialization(self, key: str) -> Materialization:
        data = self.load(key)
        return Materialization(
            partition=key,
            source=data.source,
            updated=data.updated,
            files=len(data),
            clusters=data.cluster_count,
            backend=data.backend,
            model_id=data.model_id,
            method=data.method,
            run_id=self.run_id(key, data.version),
            version=data.version,
        )

    def run_id(self, key: str, version: str) -> str | None:
        """The Dagster run that materialized the partition's ``3d_projection``, if the instance can say."""
        return self.runs.run_id(key, version)
