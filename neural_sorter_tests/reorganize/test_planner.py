"""The planner on plain data: no folder is created, read or stat'ed (``exists`` is a set lookup)."""

import os
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


# --- copies the user edited (issue 10 item 10) -----------------------------------------------------------


def hashes(**by_path: str):
    """A ``digest`` over {path under OUT/p: current hash}; records which paths were read."""
    read: list[str] = []

    def digest(path: str) -> str | None:
        read.append(path)
        return by_path.get(os.path.relpath(path, OUT / "p"))

    digest.read = read
    return digest


def test_an_edited_copy_whose_original_vanished_is_kept_with_a_note_not_trashed():
    before = placed(("gone.jpg", "cats/gone.jpg", "hg", "copy"), ("also.jpg", "cats/also.jpg", "ha", "copy"))
    on_disk = {str(OUT / "p/cats/gone.jpg"), str(OUT / "p/cats/also.jpg")}
    digest = hashes(**{"cats/gone.jpg": "edited", "cats/also.jpg": "ha"})
    actions = plan(wanted(), before, OUT, "p", "copy", False, "r1", on_disk.__contains__, digest=digest)
    by = {Path(a.source).name: a for a in actions}
    assert by["gone.jpg"].action == ActionKind.KEEP
    assert by["gone.jpg"].destination == str(OUT / "p/cats/gone.jpg")
    assert by["gone.jpg"].content_hash == "hg"  # the recorded hash: the next run sees the edit again
    assert "edited" in by["gone.jpg"].note
    assert by["also.jpg"].action == ActionKind.REMOVE and not by["also.jpg"].note  # unedited: trash as before


def test_an_edited_copy_is_not_relocated_when_its_cluster_changes_nor_taken_by_a_renamed_source():
    before = placed(("a.jpg", "cats/a.jpg", "ha", "copy"), ("old.jpg", "cats/old.jpg", "ho", "copy"))
    on_disk = {str(OUT / "p/cats/a.jpg"), str(OUT / "p/cats/old.jpg"), "/src/a.jpg", "/src/new.jpg"}
    digest = hashes(**{"cats/a.jpg": "edited-a", "cats/old.jpg": "edited-o"})
    files = wanted(("a.jpg", "ha", "dogs"), ("new.jpg", "ho", "cats"))  # old.jpg renamed to new.jpg
    actions = plan(files, before, OUT, "p", "copy", False, "r1", on_disk.__contains__, digest=digest)
    kinds = {(Path(a.source).name, a.destination): a.action for a in actions}
    assert kinds[("a.jpg", str(OUT / "p/cats/a.jpg"))] == ActionKind.KEEP
    assert kinds[("old.jpg", str(OUT / "p/cats/old.jpg"))] == ActionKind.KEEP
    assert kinds[("new.jpg", str(OUT / "p/cats/new.jpg"))] == ActionKind.COPY  # a fresh copy, beside the edit
    assert all(a.action != ActionKind.REMOVE and a.action != ActionKind.RELOCATE for a in actions)


def test_an_edited_copy_of_a_changed_original_stays_beside_the_new_copy_on_every_later_run():
    before = placed(("a.jpg", "cats/a.jpg", "h1", "copy"))
    on_disk = {str(OUT / "p/cats/a.jpg"), "/src/a.jpg"}
    digest = hashes(**{"cats/a.jpg": "edited"})
    first = plan(
        wanted(("a.jpg", "h2", "cats")), before, OUT, "p", "copy", False, "r1", on_disk.__contains__, digest=digest
    )
    assert [(a.action, a.destination) for a in first] == [
        (ActionKind.KEEP, str(OUT / "p/cats/a.jpg")),
        (ActionKind.COPY, str(OUT / "p/cats/a (2).jpg")),
    ]
    # The next run reads both rows back for the same source: the edit is still kept, the new copy kept too.
    record = pd.DataFrame([{k: str(v) for k, v in vars(a).items() if k in MANIFEST_FIELDS} for a in first])
    on_disk.add(str(OUT / "p/cats/a (2).jpg"))
    digest = hashes(**{"cats/a.jpg": "edited", "cats/a (2).jpg": "h2"})
    second = plan(
        wanted(("a.jpg", "h2", "cats")), record, OUT, "p", "copy", False, "r2", on_disk.__contains__, digest=digest
    )
    assert sorted((str(a.action), a.destination, bool(a.note)) for a in second) == [
        ("keep", str(OUT / "p/cats/a (2).jpg"), False),
        ("keep", str(OUT / "p/cats/a.jpg"), True),
    ]


def test_unmoved_placements_and_moved_originals_are_never_read():
    before = placed(("a.jpg", "cats/a.jpg", "ha", "copy"), ("m.jpg", "cats/m.jpg", "hm", "move"))
    on_disk = {str(OUT / "p/cats/a.jpg"), str(OUT / "p/cats/m.jpg"), "/src/a.jpg"}
    digest = hashes()
    actions = plan(
        wanted(("a.jpg", "ha", "cats")), before, OUT, "p", "copy", False, "r1", on_disk.__contains__, digest=digest
    )
    assert {a.action for a in actions} == {ActionKind.KEEP}
    assert digest.read == []


# --- keep_structure (issue 12) ----------------------------------------------------------------------------


def test_keep_structure_places_each_file_under_its_original_sub_folders():
    files = wanted(("x/y/a.jpg", "ha", "cats"), ("z/a.jpg", "hb", "cats"), ("top.jpg", "hc", "dogs"))
    actions = plan(files, placed(), OUT, "p", "copy", False, "r", set().__contains__, keep_structure=True)
    assert sorted(a.destination for a in actions) == [
        str(OUT / "p/cats/x/y/a.jpg"),
        str(OUT / "p/cats/z/a.jpg"),
        str(OUT / "p/dogs/top.jpg"),
    ]
    flat = plan(files, placed(), OUT, "p", "copy", False, "r", set().__contains__)
    assert sorted(a.destination for a in flat) == [
        str(OUT / "p/cats/a (2).jpg"),
        str(OUT / "p/cats/a.jpg"),
        str(OUT / "p/dogs/top.jpg"),
    ]


def test_keep_structure_never_puts_a_folder_where_a_file_is_or_a_file_where_a_folder_goes():
    # "sub" was a file at the source's top once (its copy is still held); now "sub/" is a folder, and a
    # file named "x" sits next to a folder "x/" that an earlier placement of another cluster does not share.
    before = placed(("sub", "cats/sub", "hs", "copy"))
    on_disk = {str(OUT / "p/cats/sub")}
    files = wanted(("sub/a.jpg", "ha", "cats"), ("x", "hx", "dogs"), ("x/b.jpg", "hb", "dogs"))
    actions = plan(files, before, OUT, "p", "copy", False, "r", on_disk.__contains__, keep_structure=True)
    dest = {Path(a.source).name: a.destination for a in actions}
    assert dest["a.jpg"] == str(OUT / "p/cats/sub (2)/a.jpg")
    assert dest["x"] == str(OUT / "p/dogs/x")
    assert dest["b.jpg"] == str(OUT / "p/dogs/x (2)/b.jpg")
    assert len(set(dest.values())) == len(dest)


def test_turning_keep_structure_on_relocates_placed_files_into_their_sub_folders():
    before = placed(("x/a.jpg", "cats/a.jpg", "ha", "copy"))
    on_disk = {str(OUT / "p/cats/a.jpg"), "/src/x/a.jpg"}
    actions = plan(
        wanted(("x/a.jpg", "ha", "cats")),
        before,
        OUT,
        "p",
        "copy",
        False,
        "r",
        on_disk.__contains__,
        keep_structure=True,
    )
    assert [(a.action, a.destination, a.previous_destination) for a in actions] == [
        (ActionKind.RELOCATE, str(OUT / "p/cats/x/a.jpg"), str(OUT / "p/cats/a.jpg"))
    ]
