"""``make demo``: sorts the real sample photos that ship inside scikit-image, with no download."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from neural_sorter import cli, settings

_SAMPLES = [
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "color.png",
    "grass.png",
    "gravel.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "logo.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
    "no_time_for_that_tiny.gif",
    "multipage_rgb.tif",
]


def main(argv: list[str] | None = None) -> int:
    try:
        import skimage
    except ImportError:
        print("make demo needs scikit-image (installed with the dev extras)", file=sys.stderr)
        return 2
    data = Path(skimage.__file__).parent / "data"
    base = settings.home_dir() / "demo"
    src, out = base / "photos", base / "sorted"
    src.mkdir(parents=True, exist_ok=True)
    copied = 0
    for name in _SAMPLES:
        if (data / name).exists() and not (src / name).exists():
            shutil.copy2(data / name, src / name)
            copied += 1
    print(f"demo photos: {src} ({len(list(src.iterdir()))} files); sorted tree: {out}")
    return cli.main(["sort", str(src), "--out", str(out), "--k", "auto", *(argv or sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
