"""Page fragments as plain functions of the data: header chips, thumbnail tiles, detail, results, gallery.

They return Dash components and touch no callback state, so tests can call them directly and the callbacks
stay thin.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from urllib.parse import quote

import numpy as np
from dash import dcc, html

from dash_viewer import ids
from dash_viewer.data import Materialization, PartitionData, neighbours, top_categories
from dash_viewer.data.duplicates import (
    DuplicateGroup,
    copies_of,
    distinct_ids,
    duplicate_groups,
    file_format,
    human_size,
)
from dash_viewer.figures import MUTED, group_color, groups

GALLERY_PAGE = 12
GALLERY_MAX_GROUPS = 40
DUPLICATE_GROUPS_SHOWN = 40


def thumb_url(key: str, idx: int, version: str, small: bool = False) -> str:
    """The only way the page refers to a picture: partition, integer id and the data version (cache key)."""
    return f"/thumb/{quote(key, safe='')}/{int(idx)}?v={quote(version, safe='')}" + ("&s=1" if small else "")


def cluster_color(cluster_id: int) -> str:
    return MUTED if cluster_id < 0 else group_color(int(cluster_id))


def relative_time(when: datetime, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago': how fresh the data is at a glance."""
    now = now or datetime.now(timezone.utc)
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{round(seconds / 60)} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    days = round(seconds / 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


def _chip(text: str, title: str | None = None, kind: str = "", chip_id: str | None = None) -> html.Span:
    props = {"id": chip_id} if chip_id else {}
    return html.Span(text, title=title or text, className=f"chip {kind}".strip(), **props)


def run_info(info: Materialization, now: datetime | None = None) -> list[html.Span]:
    """The header line that says exactly which materialization is on screen."""
    local = info.updated.astimezone()
    model = info.model_id or ""
    short_model = model.rsplit("@", 1)[0].rstrip("/").rsplit("/", 1)[-1] if model else ""
    backend = " · ".join(x for x in (info.backend, short_model) if x) or "backend unknown"
    chips = [
        _chip(f"{info.files:,} files", f"{info.files} files in this partition", "strong", chip_id=ids.FILE_COUNT),
        _chip(f"{info.clusters} clusters"),
        _chip(backend, f"embeddings: {info.backend} {model}".strip()),
        _chip(info.method or "projection unknown", "3D projection method"),
        _chip(
            f"updated {local:%Y-%m-%d %H:%M} · {relative_time(info.updated, now)}",
            f"3d_projection written {local:%Y-%m-%d %H:%M:%S %Z}; newer materializations load automatically",
        ),
    ]
    if info.run_id:
        chips.append(_chip(f"run {info.run_id[:8]}", f"Dagster run {info.run_id}", "mono"))
    return chips


def partition_options(keys: list[str], sources: dict[str, str]) -> list[dict[str, str]]:
    """Dropdown entries: the folder's name and path where known, the partition key otherwise."""
    options = []
    for key in keys:
        source = sources.get(key)
        if source:
            name = os.path.basename(source.rstrip("/\\")) or source
            options.append({"label": f"{name} — {source}", "value": key, "title": f"{source}\npartition {key}"})
        else:
            options.append({"label": key, "value": key, "title": f"partition {key}"})
    return options


def tile(
    data: PartitionData,
    idx: int,
    where: str,
    caption: str | None = None,
    badge: str | None = None,
    active: bool = False,
    copies_badge: bool = True,
) -> html.Button:
    """A clickable thumbnail; its id carries only the point id, which the click callback validates.

    Two components per tile (button + img; caption is plain text, the cluster dot and the score badge are
    CSS pseudo-elements): Dash's renderer does work per component on every update, and a gallery page
    holds hundreds of tiles. A file with copies (a duplicate group) gets an "N copies" badge as well.
    """
    name = str(data.points["name"].iat[idx])
    cid = int(data.points["cluster_id"].iat[idx])
    extra = {"data-badge": badge} if badge else {}
    copies = copies_of(data, idx) if copies_badge else 1
    return html.Button(
        [
            html.Img(src=thumb_url(data.key, idx, data.version, small=True), alt=name, draggable="false"),
            caption if caption is not None else name,
            html.Span(f"{copies} copies", className="copies") if copies > 1 else None,
        ],
        id=ids.thumb(where, idx),
        n_clicks=0,
        title=f"{data.points['relative_path'].iat[idx]}\n{data.points['cluster_name'].iat[idx]}",
        className="tile active" if active else "tile",
        style={"--swatch": cluster_color(cid)},
        **extra,
    )


def tooltip_content(data: PartitionData, idx: int) -> list[object]:
    """What hovering a point shows: its thumbnail, file name and cluster."""
    points = data.points
    cid = int(points["cluster_id"].iat[idx])
    category = points["top_category"].iat[idx]
    return [
        html.Img(src=thumb_url(data.key, idx, data.version), className="tip-img"),
        html.Div(str(points["name"].iat[idx]), className="tip-name"),
        html.Div(
            [
                html.Span(className="swatch", style={"background": cluster_color(cid)}),
                str(points["cluster_name"].iat[idx]),
                html.Span(f" · {category}", className="muted") if category else None,
            ],
            className="tip-meta",
        ),
    ]


def detail_panel(
    data: PartitionData | None, idx: int | None, k: int = 8, quality: list[dict[str, object]] | None = None
) -> list[object]:
    """The selected file: large picture, path, cluster, copies, quality flags (with ``quality``, the rows of
    ``data.duplicates.quality_scores``), top categories and nearest neighbours."""
    if data is None or idx is None or data.valid_id(idx) is None:
        return [
            html.Div(
                [
                    html.Div("◎", className="empty-icon"),
                    html.Div("Nothing selected", className="empty-title"),
                    html.Div(
                        "Click a point on the map or a thumbnail to see the picture, its cluster and its look-alikes.",
                        className="empty-text",
                    ),
                ],
                className="empty-state",
            )
        ]
    row = data.points.iloc[idx]
    cid = int(row["cluster_id"])
    facts: list[object] = [
        _fact(
            "Cluster",
            [html.Span(className="swatch", style={"background": cluster_color(cid)}), str(row["cluster_name"])],
        ),
    ]
    facts.append(_fact("Cluster size", f"{int((data.points['cluster_id'] == cid).sum()):,} files"))
    if isinstance(row.get("hier_code"), str):
        facts.append(_fact("Sort code", html.Code(row["hier_code"])))
    if isinstance(row.get("kind"), str):
        facts.append(_fact("Kind", row["kind"]))
    facts.extend(_copy_facts(data, idx))
    cats = top_categories(data, idx)
    category_block: object
    if cats:
        category_block = html.Div(
            [
                html.Div(
                    [
                        html.Span(name, className="bar-label"),
                        html.Span(html.Span(style={"width": f"{max(2.0, p * 100):.0f}%"}), className="bar-track"),
                        html.Span(f"{p:.0%}", className="bar-value"),
                    ],
                    className="bar-row",
                )
                for name, p in cats
            ],
            className="bars",
        )
    else:
        category_block = html.Div(
            "No zero-shot categories: they come from CLIP with categories configured.", className="muted small"
        )
    near, scores = neighbours(data, idx, k)
    neighbour_block = (
        html.Div(
            [tile(data, int(i), "neighbour", caption="", badge=f"{s:.2f}") for i, s in zip(near, scores)],
            className="grid",
        )
        if len(near)
        else html.Div("No embedding vector for this file.", className="muted small")
    )
    return [
        html.A(
            html.Img(src=thumb_url(data.key, idx, data.version), className="hero", alt=str(row["name"])),
            href=thumb_url(data.key, idx, data.version),
            target="_blank",
            className="hero-link",
        ),
        html.H2(str(row["name"]), id=ids.DETAIL_NAME, className="detail-name", title=str(row["relative_path"])),
        html.Div(
            [
                html.Code(str(row["path"]), className="path", id=ids.DETAIL_PATH),
                dcc.Clipboard(content=str(row["path"]), className="copy", title="copy path"),
            ],
            className="path-row",
        ),
        html.Div(facts, className="facts"),
        html.Div("Quality flags", className="section-label"),
        quality_block(row, quality),
        html.Div("Top categories", className="section-label"),
        category_block,
        html.Div("Nearest neighbours", className="section-label"),
        neighbour_block,
    ]


def _copy_facts(data: PartitionData, idx: int) -> list[html.Div]:
    """Size and format, and where the file stands among its copies (or the most similar other picture)."""
    row = data.points.iloc[idx]
    facts = []
    width, height = row.get("width"), row.get("height")
    known = all(isinstance(v, (int, float, np.number)) and np.isfinite(v) and v > 0 for v in (width, height))
    size = f"{int(width)} × {int(height)} px" if known else ""
    parts = (size, file_format(row["relative_path"]), human_size(float(row.get("size", np.nan))))
    facts.append(_fact("File", " · ".join(x for x in parts if x and x != "?"), wide=True))
    group = row.get("duplicate_group")
    if isinstance(group, str) and group:
        copies = copies_of(data, idx)
        tier = str(row.get("duplicate_tier") or "near")
        if bool(row.get("is_representative")):
            text = f"{copies} copies ({tier}) · this is the copy kept"
        else:
            rep = str(row.get("representative") or "")
            text = f"{copies} copies ({tier}) · copy of {rep.rsplit('/', 1)[-1]} ({float(row.get('similarity')):.2f})"
        facts.append(_fact("Copies", html.Span(text, id=ids.DETAIL_COPIES), wide=True))
    elif row.get("duplicate_tier") == "similar" and isinstance(row.get("similar_to"), str):
        other = str(row["similar_to"]).rsplit("/", 1)[-1]
        facts.append(_fact("Similar to", f"{other} ({float(row.get('similar_score')):.2f})", wide=True))
    return facts


def quality_block(row, scores: list[dict[str, object]] | None) -> html.Div:
    """The file's flags as chips and, when known, every flag's score against its default threshold."""
    flags = [f for f in str(row.get("flags") or "").split(",") if f]
    chips = html.Div(
        [html.Span(f.replace("_", " "), className="chip flag") for f in flags]
        or [html.Span("none", className="muted small")],
        className="row flags",
        id=ids.DETAIL_FLAGS,
    )
    if not scores:
        return html.Div([chips])
    lines = []
    for item in scores:
        score = float(item["score"])  # type: ignore[arg-type]
        value = "n/a" if not np.isfinite(score) else (f"{score:.0f}" if item["flag"] == "tiny" else f"{score:.3f}")
        lines.append(
            html.Div(
                [
                    html.Span(str(item["flag"]).replace("_", " "), className="score-name"),
                    html.Span(value, className="score-value"),
                    html.Span(f"flag {item['direction']} {float(item['threshold']):g}", className="muted"),  # type: ignore[arg-type]
                ],
                className="score-row flagged" if item["flagged"] else "score-row",
                title=str(item["meaning"]),
            )
        )
    return html.Div([chips, html.Div(lines, className="scores")])


def duplicates_view(data: PartitionData, mask: np.ndarray | None, limit: int = DUPLICATE_GROUPS_SHOWN) -> list[object]:
    """The duplicate groups with a member passing the filters, largest first: their copies side by side
    (thumbnail, size, format, path, tier, similarity) and a "Keep this" button on every copy but the one kept."""
    found = duplicate_groups(data, mask)
    if not found:
        return [
            html.Div(
                "No duplicate groups among the files shown: every picture here is one of a kind.",
                className="muted pad",
            )
        ]
    blocks: list[object] = [
        html.Div(
            f"{len(found):,} group{'s' if len(found) != 1 else ''} of copies, "
            f"{sum(len(g.ids) for g in found):,} files. The copy kept is placed in "
            "its cluster; the others go to _duplicates/ (or are skipped) when the folder is sorted. Keep another "
            "copy, then Apply.",
            className="muted small",
        )
    ]
    blocks += [duplicate_group_block(data, group) for group in found[:limit]]
    if len(found) > limit:
        blocks.append(html.Div(f"{len(found) - limit} more groups: narrow the filters.", className="muted small pad"))
    return blocks


def duplicate_group_block(data: PartitionData, group: DuplicateGroup) -> html.Section:
    points = data.points
    cards = []
    for idx in group.ids.tolist():
        row = points.iloc[idx]
        kept = bool(row["is_representative"])
        width, height = float(row["width"]), float(row["height"])
        size = f"{int(width)}×{int(height)}" if np.isfinite(width) and np.isfinite(height) else "?×?"
        similarity = float(row["similarity"])
        cards.append(
            html.Div(
                [
                    tile(data, idx, "duplicates", caption="", copies_badge=False),
                    html.Div(str(row["name"]), className="dup-name", title=str(row["path"])),
                    html.Div(
                        f"{size} · {file_format(row['relative_path'])} · {human_size(float(row['size']))}",
                        className="dup-meta",
                    ),
                    html.Div(
                        f"{row['duplicate_tier'] or 'near'} · {similarity:.2f}" if np.isfinite(similarity) else "",
                        className="dup-meta",
                    ),
                    html.Code(str(row["relative_path"]), className="dup-path", title=str(row["path"])),
                    html.Span("✓ kept", className="chip strong kept")
                    if kept
                    else html.Button(
                        "Keep this",
                        id=ids.keep(idx),
                        n_clicks=0,
                        className="btn small",
                        title="keep this copy in the cluster instead (the others become its duplicates)",
                    ),
                ],
                className="dup-card kept" if kept else "dup-card",
                **{"data-path": str(row["relative_path"])},
            )
        )
    return html.Section(
        [
            html.Div(
                [
                    html.Span(f"{len(group.ids)} copies", className="gallery-title"),
                    html.Span(group.tier, className="chip"),
                    html.Span(str(points["cluster_name"].iat[int(group.ids[0])]), className="muted"),
                    html.Code(group.key, className="muted small"),
                ],
                className="gallery-head",
            ),
            html.Div(cards, className="dup-row"),
        ],
        className="gallery-group dup-group",
        **{"data-group": group.key},
    )


def _fact(label: str, value: object, wide: bool = False) -> html.Div:
    return html.Div(
        [html.Span(label, className="fact-label"), html.Span(value, className="fact-value")],
        className="fact wide" if wide else "fact",
    )


def results_panel(data: PartitionData, ranked: list[int], scores: list[float], selected: int | None) -> list[object]:
    """Search / "more like this" hits as a grid, best first, with their similarity."""
    valid = [(int(i), float(s)) for i, s in zip(ranked, scores) if data.valid_id(i) is not None]
    if not valid:
        return [html.Div("No matches with the current filters.", className="muted small pad")]
    return [
        html.Div(
            [tile(data, i, "result", badge=f"{s:.2f}", active=i == selected) for i, s in valid],
            className="grid results-grid",
        )
    ]


def results_placeholder() -> list[object]:
    """The results strip when empty. It keeps its place so the map never changes size under the user (and a
    50,000-point WebGL scene is not redrawn just because a panel appeared)."""
    return [
        html.Div(
            [
                html.Span("✦", className="placeholder-icon"),
                html.Span(
                    [
                        "Pick a picture and press ",
                        html.Strong("More like this"),
                        ", or search by text: the closest matches line up here, best first.",
                    ]
                ),
            ],
            className="results-placeholder",
        )
    ]


def gallery(
    data: PartitionData, color_by: str, mask: np.ndarray | None, limits: dict[str, int] | None = None
) -> list[object]:
    """A grid of thumbnails per cluster (or category), most typical members first; pages of 12 on demand.
    One picture per duplicate group (``distinct_ids``), with its "N copies" badge."""
    limits = limits or {}
    blocks: list[object] = []
    order = data.points["distance_to_centroid"].to_numpy(dtype=np.float64, na_value=np.nan)
    codes = data.points["hier_code"].astype(str).to_numpy()
    shown_mask = np.zeros(len(data.points), dtype=bool)
    shown_mask[distinct_ids(data, mask)] = True
    all_groups = groups(data, color_by, shown_mask)
    for group in all_groups[:GALLERY_MAX_GROUPS]:
        members = group.ids
        ranked = members[np.lexsort((codes[members], np.nan_to_num(order[members], nan=np.inf)))]
        shown = int(limits.get(group.key, GALLERY_PAGE))
        more = len(ranked) - shown
        blocks.append(
            html.Section(
                [
                    html.Div(
                        [
                            html.Span(className="swatch lg", style={"background": group.color}),
                            html.Span(group.label, className="gallery-title"),
                            html.Span(_count_label(data, group.ids, mask), className="muted"),
                        ],
                        className="gallery-head",
                    ),
                    html.Div([tile(data, int(i), "gallery") for i in ranked[:shown]], className="grid"),
                    html.Button(
                        f"Show {min(more, 24)} more of {more:,}",
                        id=ids.gallery_more(group.key),
                        n_clicks=0,
                        className="btn ghost small more",
                    )
                    if more > 0
                    else None,
                ],
                className="gallery-group",
            )
        )
    if len(all_groups) > GALLERY_MAX_GROUPS:
        blocks.append(
            html.Div(
                f"{len(all_groups) - GALLERY_MAX_GROUPS} more groups: narrow the filters to see them.",
                className="muted small pad",
            )
        )
    if not blocks:
        blocks.append(html.Div("No files match the filters.", className="muted pad"))
    return blocks


def empty_store(store: str) -> html.Div:
    """Shown instead of the map when the store has no materialized partition yet."""
    return html.Div(
        [
            html.Div("◇", className="empty-icon"),
            html.Div("No materialized partitions yet", className="empty-title"),
            html.Div(
                [
                    "Sort a folder first: ",
                    html.Code("neural-sorter sort ~/Pictures --out ~/Pictures-sorted"),
                    f". The viewer reads {store} and will pick it up by itself.",
                ],
                className="empty-text",
            ),
        ],
        className="empty-state wide",
    )


def corrections_list(rows: list[dict[str, object]]) -> list[object]:
    """The partition's hand corrections, oldest first: pending ones (not yet applied by a run) can be dropped."""
    if not rows:
        return [html.Div("No corrections yet.", className="muted small")]
    items = []
    for row in rows:
        pending = bool(row.get("pending"))
        items.append(
            html.Li(
                [
                    html.Span(str(row.get("text")), className="grow"),
                    html.Span("pending" if pending else "applied", className=f"chip {'strong' if pending else ''}"),
                    html.Button(
                        "×",
                        id=ids.corr_remove(str(row.get("id"))),
                        n_clicks=0,
                        title="drop this correction (it is not applied yet)",
                        className="btn ghost small",
                    )
                    if pending
                    else None,
                ],
                className="row correction",
            )
        )
    return [html.Ul(items, className="corrections")]


def resort_status(status: dict[str, object] | None) -> list[object]:
    """What the last re-sort started from the viewer did: running, done (with the undo command) or failed."""
    if not status:
        return []
    state = str(status.get("state"))
    return [html.Span(str(status.get("message") or state), className=f"resort {state}", **{"data-state": state})]


def _count_label(data: PartitionData, shown: np.ndarray, mask: np.ndarray | None) -> str:
    """'12 files', or '10 pictures · 13 files' when copies were folded into their representatives."""
    if "duplicate_group" not in data.points or not len(shown):
        return f"{len(shown):,} files"
    group = data.points["duplicate_group"].to_numpy(dtype=object)
    passing = np.ones(len(data.points), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    keys = {group[i] for i in shown.tolist() if isinstance(group[i], str)}
    files = len(shown) - len(keys) + int((np.isin(group, list(keys)) & passing).sum()) if keys else len(shown)
    return f"{len(shown):,} files" if files == len(shown) else f"{len(shown):,} pictures · {files:,} files"
