"""Builds labelled image sets for ``bench/quality.py`` from real images that Debian packages ship.

Each set is a folder with one sub-folder per class, written under ``~/.cache/neural-sorter-bench/sets``
(``NEURAL_SORTER_BENCH_CACHE`` moves it), never into the repository. Classes are the packages' own
categories; a class is capped at ``--cap`` files (a seeded sample) so no class drowns the others.

    apt-get install openclipart-png wesnoth-1.16-data
    python bench/build_sets.py            # prints the folders it built

- ``openclipart10``: clip art from ``openclipart-png``, 10 of its sub-categories that name what is drawn
  (mammals, birds, bugs, fish, fruit, desserts, flowers, vehicles, boats, musical things).
- ``wesnoth-portraits``: the painted unit portraits of ``wesnoth-1.16-data``, one class per race with at
  least 9 portraits (humans, undead, elves, orcs, dwarves, merfolk, drakes, nagas, goblins).
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from labelled import CACHE

OPENCLIPART = Path("/usr/share/openclipart/png")
WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/images/portraits")

SETS: dict[str, tuple[Path, str, dict[str, str]]] = {
    "openclipart10": (
        OPENCLIPART,
        "openclipart-png",
        {
            "mammals": "animals/mammals",
            "birds": "animals/birds",
            "bugs": "animals/bugs",
            "fish": "animals/fish",
            "fruit": "food/fruit",
            "desserts": "food/desserts",
            "flowers": "plants/flowers",
            "vehicles": "transportation/vehicles",
            "boats": "transportation/boating",
            "music": "recreation/music",
        },
    ),
    "wesnoth-portraits": (
        WESNOTH,
        "wesnoth-1.16-data",
        {
            race: race
            for race in ("humans", "undead", "elves", "orcs", "dwarves", "merfolk", "drakes", "nagas", "goblins")
        },
    ),
}


def build(name: str, cap: int, seed: int = 0) -> Path:
    root, package, classes = SETS[name]
    if not root.is_dir():
        raise SystemExit(f"{root} missing: apt-get install {package}")
    out = CACHE / "sets" / name
    if out.exists():
        shutil.rmtree(out)
    rng = random.Random(seed)
    for label, sub in classes.items():
        files = sorted(p for p in (root / sub).rglob("*.png") if p.is_file())
        if len(files) > cap:
            files = sorted(rng.sample(files, cap))
        (out / label).mkdir(parents=True)
        for index, path in enumerate(files):
            shutil.copyfile(path, out / label / f"{index:03d}-{path.name}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", nargs="*", default=list(SETS))
    parser.add_argument("--cap", type=int, default=40, help="at most this many files per class")
    args = parser.parse_args()
    for name in args.sets:
        out = build(name, args.cap)
        counts = {d.name: len(list(d.iterdir())) for d in sorted(out.iterdir())}
        print(f"{out}: {sum(counts.values())} files, {len(counts)} classes {counts}")


if __name__ == "__main__":
    main()
