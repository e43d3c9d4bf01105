"""The planner on plain data: no folder is created, read or stat'ed (``exists`` is a set lookup)."""

from pathlib import Path

import pandas as pd
import pytest

from neural_sorter.reorganize import MANIFEST_FIELDS, ActionKind, plan

OUT = Path("/nowhere/out")


def wanted(*rows: tuple[str, str, str]) -> pd.DataFrame:
    """(source name, content hash, cluster) -> the planner's input table."""
    return pd.DataFrame(
        [
            {
                "source": f"/src/{name}",
                "relative_path": name,
                "content_hash": digest,
                "cluster_name": cluster,
                "hier_code": f"00-{n:05d}",
            }
            for n, (name, digest, cluster) in enumerate(rows)
        ]
    )


def placed(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    """(source name, destination under OUT/p, content hash, action) -> holding rows of the last record."""
    return pd.DataFrame(
        [
            {
                "source": f"/src/{name}",
                "destination": str(OUT / "p" / dest),
                "content_hash": digest,
                "cluster": dest.split("/")[0],
                "action": action,
                "partition": "p",
                "run_id": "r0",
                "previous_destination": "",
            }
            for name, dest, digest, action in rows
        ],
        columns=MANIFEST_FIELDS,
    )


def test_planner_decides_from_data_alone(monkeypatch):
    import os

    def no_disk(*_args, **_kwargs):
        raise AssertionError("the planner touched the disk")

    for name in ("lstat", "stat", "listdir", "scandir"):
        monkeypatch.setattr(os, name, no_disk)
    on_disk = {
        str(OUT / "p/cats/a.jpg"),
        str(OUT / "p/cats/gone.jpg"),
        str(OUT / "p/cats/moved.jpg"),
        str(OUT / "p/dogs/b.jpg"),
        str(OUT / "p/dogs/new.jpg"),
        "/src/new.jpg",
        "/src/a.jpg",
        "/src/b.jpg",
    }
    before = placed(
        ("a.jpg", "cats/a.jpg", "ha", "copy"),
        ("b.jpg", "dogs/b.jpg", "hb", "copy"),
        ("gone.jpg", "cats/gone.jpg", "hg", "copy"),
        ("moved.jpg", "cats/moved.jpg", "hm", "move"),
    )
    files = wanted(("a.jpg", "ha", "dogs"), ("b.jpg", "hb", "dogs"), ("new.jpg", "hn", "dogs"))
    actions = plan(files, before, OUT, "p", "copy", False, "r1", on_disk.__contains__)
    by = {Path(a.source).name: a for a in actions}
    assert all(isinstance(a.action, ActionKind) for a in actions)
    assert by["a.jpg"].action == ActionKind.RELOCATE
    assert by["a.jpg"].destination == str(OUT / "p/dogs/a.jpg")
    assert by["a.jpg"].previous_destination == str(OUT / "p/cats/a.jpg")
    assert by["b.jpg"].action == ActionKind.KEEP
    # new.jpg's plain name is taken on disk (by something the tool never made): the next free one.
    assert by["new.jpg"].action == ActionKind.COPY and by["new.jpg"].destination == str(OUT / "p/dogs/new (2).jpg")
    assert by["gone.jpg"].action == ActionKind.REMOVE and "/.neural-sorter/trash/r1/" in by["gone.jpg"].destination
    assert by["moved.jpg"].action == ActionKind.KEEP  # a moved original is never retired
    assert {a.run_id for a in actions} == {"r1"}


def test_planner_rejects_unknown_modes():
    with pytest.raises(ValueError, match="unknown mode"):
        plan(wanted(), placed(), OUT, "p", "teleport", False, "r", set().__contains__)


def test_action_kinds_are_the_manifest_strings():
    assert [str(kind) for kind in ActionKind] == ["copy", "hardlink", "symlink", "move", "keep", "relocate", "remove"]
    assert ActionKind("move") == "move" and f"{ActionKind.MOVE}" == "move"
