"""Decoding of images and videos into thumbnails, and the ``decoded_frames`` table built from a manifest."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, features

from neural_sorter.decoding import frames as frames_module
from neural_sorter.decoding import videos as videos_module
from neural_sorter.decoding.frames import FRAME_COLUMNS, DecodeOptions, decode_manifest
from neural_sorter.decoding.images import DecodeError, decode_jpeg, load_image_thumbnail
from neural_sorter.decoding.videos import is_informative, load_video_frames
from neural_sorter.inventory import build_file_manifest
from neural_sorter_tests.media import BAND_BASE, BAND_STEP, png_header_only, write_video

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
BIG = 10**9  # a max_pixels that never triggers


def assert_close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> None:
    diffs = [abs(int(a) - int(b)) for a, b in zip(pixel, expected, strict=True)]
    assert max(diffs) <= tolerance, (pixel, expected)


def half_red_half_blue(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    return image


# --------------------------------------------------------------------------------------------------- images


def test_exif_orientation_6_rotates_the_thumbnail(tmp_path: Path) -> None:
    stored = half_red_half_blue(400, 200)  # landscape as stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": stored left column becomes the top row
    rotated_path = tmp_path / "rotated.jpg"
    stored.save(rotated_path, quality=95, exif=exif.tobytes())
    plain_path = tmp_path / "plain.jpg"
    stored.save(plain_path, quality=95)

    plain = load_image_thumbnail(plain_path, 64, BIG)
    assert plain.size == (128, 64)

    thumb = load_image_thumbnail(rotated_path, 64, BIG)
    assert thumb.mode == "RGB"
    assert thumb.size == (64, 128)  # width and height swapped
    assert_close(thumb.getpixel((32, 10)), RED)
    assert_close(thumb.getpixel((32, 117)), BLUE)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_background_behind_dark_content_is_white(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"cutout_{mode}.png"
    if mode == "P":  # palette entries 0 and 1 are both black; 0 is the transparent one
        image = Image.new("P", (100, 80), 0)
        image.putpalette([0, 0, 0] * 256)
        image.paste(1, (30, 20, 70, 60))
        image.save(path, transparency=0)
    else:
        image = Image.new("RGBA", (100, 80), (0, 0, 0, 0))  # fully transparent *black*
        image.paste((0, 0, 0, 255), (30, 20, 70, 60))  # an opaque black square in the middle
        image.convert(mode).save(path)
    with Image.open(path) as check:
        assert check.mode == mode

    thumb = load_image_thumbnail(path, 40, BIG)
    assert thumb.mode == "RGB"
    assert thumb.size == (50, 40)
    for corner in [(0, 0), (49, 0), (0, 39), (49, 39)]:
        assert_close(thumb.getpixel(corner), WHITE, tolerance=3)
    assert_close(thumb.getpixel((25, 20)), (0, 0, 0), tolerance=10)  # the opaque part keeps its colour


def test_real_cutouts_have_white_backgrounds(tuxpaint_dir: Path) -> None:
    checked = 0
    for path in sorted(tuxpaint_dir.glob("*/*.png")):
        with Image.open(path) as source:
            rgba = source.convert("RGBA")
        width, height = rgba.size
        corner_alpha = [rgba.getpixel(c)[3] for c in [(0, 0), (width - 1, 0), (0, height - 1)]]
        near = rgba.crop((0, 0, max(1, width // 10), max(1, height // 10)))
        if max(corner_alpha) != 0 or near.getextrema()[3][1] != 0:
            continue  # only images whose top-left tenth is fully transparent
        thumb = load_image_thumbnail(path, 64, BIG)
        assert_close(thumb.getpixel((0, 0)), WHITE, tolerance=3)
        checked += 1
        if checked == 10:
            break
    assert checked >= 5, "expected several cut-outs with transparent corners in tuxpaint8"


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_image_gives_its_first_frame(tmp_path: Path, fmt: str) -> None:
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    frames = [Image.new("RGB", (60, 40), colour) for colour in (RED, GREEN, BLUE)]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 3

    thumb = load_image_thumbnail(path, 32, BIG)
    assert thumb.mode == "RGB"
    assert thumb.size == (48, 32)
    assert_close(thumb.getpixel((24, 16)), RED, tolerance=30)


def test_large_jpeg_uses_draft_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = half_red_half_blue(4000, 3000)
    path = tmp_path / "large.jpg"
    image.save(path, quality=85)

    seen_sizes = []
    real_transpose = ImageOps.exif_transpose

    def spy(img, **kwargs):  # sees the image right after load(), before any resizing
        seen_sizes.append(img.size)
        return real_transpose(img, **kwargs)

    monkeypatch.setattr(ImageOps, "exif_transpose", spy)
    # JPEGs are exempt from max_pixels because draft decoding never materialises the full-size pixels.
    thumb = load_image_thumbnail(path, 256, max_pixels=1_000_000)

    assert min(thumb.size) == 256
    assert thumb.size == (341, 256)
    assert seen_sizes and seen_sizes[0][0] <= 1000 and seen_sizes[0][1] <= 750, seen_sizes  # DCT-scaled load
    assert_close(thumb.getpixel((40, 128)), RED)
    assert_close(thumb.getpixel((300, 128)), BLUE)


def test_small_image_is_not_upscaled(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (100, 50), GREEN).save(path)
    assert load_image_thumbnail(path, 256, BIG).size == (100, 50)


def test_png_over_max_pixels_is_refused_with_the_cap_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 100), GREEN).save(path)
    with pytest.raises(DecodeError) as info:
        load_image_thumbnail(path, 32, max_pixels=19_999)
    message = str(info.value)
    assert "19999" in message
    assert "max_image_pixels" in message
    assert "200x100" in message
    # exactly at the cap is allowed
    assert load_image_thumbnail(path, 32, max_pixels=20_000).size == (64, 32)


def test_decompression_bomb_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20_000, 20_000))  # 400 megapixels declared in a 57-byte file
    with pytest.raises(DecodeError, match="too large"):
        load_image_thumbnail(path, 32, DecodeOptions().max_image_pixels)


def test_100_megapixel_camera_jpeg_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "gfx100.jpg"  # 11648x8736: the native resolution of 100 MP medium-format cameras
    Image.new("L", (11648, 8736), 128).save(path, quality=80)
    thumb = load_image_thumbnail(path, 256, max_pixels=DecodeOptions().max_image_pixels)
    assert min(thumb.size) == 256


def test_16_bit_greyscale_png_keeps_its_tones(tmp_path: Path) -> None:
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((40, 60), 32768, dtype=np.uint16)).save(path)
    with Image.open(path) as check:
        assert check.mode == "I;16"
    thumb = load_image_thumbnail(path, 32, BIG)
    assert_close(thumb.getpixel((10, 10)), (128, 128, 128), tolerance=10)


def _valid_bytes(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("truncated.jpg", lambda: _valid_bytes("JPEG")[: len(_valid_bytes("JPEG")) // 2]),
        ("truncated.png", lambda: _valid_bytes("PNG")[: len(_valid_bytes("PNG")) // 2]),
        ("header_only.png", lambda: _valid_bytes("PNG")[:40]),
        ("notes.jpg", lambda: b"this is a text file, not a JPEG\n" * 10),
        ("empty.png", lambda: b""),
    ],
)
def test_broken_files_raise_decode_error(tmp_path: Path, name: str, content) -> None:
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(DecodeError) as info:
        load_image_thumbnail(path, 32, BIG)
    assert str(info.value)


def test_every_truncation_of_a_png_and_jpeg_is_a_decode_error(tmp_path: Path) -> None:
    for fmt in ("PNG", "JPEG"):
        data = _valid_bytes(fmt)
        path = tmp_path / f"cut.{fmt.lower()}"
        for cut in range(0, len(data) - 1, max(1, len(data) // 97)):
            path.write_bytes(data[:cut])
            with pytest.raises(DecodeError):
                load_image_thumbnail(path, 32, BIG)


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="disappeared"):
        load_image_thumbnail(tmp_path / "gone.png", 32, BIG)
    with pytest.raises(DecodeError, match="disappeared"):
        load_video_frames(tmp_path / "gone.mp4", 3, 32)


def test_all_real_images_decode(tuxpaint_dir: Path) -> None:
    paths = sorted(tuxpaint_dir.glob("*/*.png"))
    assert len(paths) >= 200
    for path in paths:
        thumb = load_image_thumbnail(path, 48, BIG)
        with Image.open(path) as source:
            expected = min(48, min(source.size))
        assert thumb.mode == "RGB"
        assert min(thumb.size) == expected, path


# --------------------------------------------------------------------------------------------------- videos


def band_index(image: Image.Image) -> float:
    """Which source frame a decoded synthetic frame shows (see conftest.write_video)."""
    top = np.asarray(image, dtype=np.float32)[: image.height // 2 - 2]
    return (float(top.mean()) - BAND_BASE) / BAND_STEP


def check_frames(frames: list, wanted: int, black: int = 10, total: int = 40, fps: int = 10) -> list[int]:
    assert len(frames) == wanted
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)), indices
    for frame in frames:
        assert black <= frame.index < total, indices  # the black intro is skipped
        array = np.asarray(frame.image)
        assert is_informative(array)
        assert array.mean() > 40
        assert frame.image.mode == "RGB"
        assert min(frame.image.size) == 32
        assert abs(band_index(frame.image) - frame.index) < 0.6, (frame.index, band_index(frame.image))
        assert frame.timestamp == pytest.approx(frame.index / fps, abs=0.051)
    return indices


@pytest.mark.parametrize("wanted", [1, 3, 5])
def test_mp4_frames_skip_black_intro(make_video, wanted: int) -> None:
    path = make_video("intro.mp4")
    check_frames(load_video_frames(path, wanted, 32), wanted)


def _broken_decord(*args):
    raise RuntimeError("decord cannot open this")


def test_pyav_fallback_when_decord_fails(make_video, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_video("fallback.mp4")
    calls = []

    def broken_decord(*args):
        calls.append(args)
        _broken_decord()

    monkeypatch.setattr(videos_module, "_with_decord", broken_decord)
    check_frames(load_video_frames(path, 3, 32), 3)
    assert calls


def test_ogv_is_read_with_pyav(tmp_path: Path, ogg_codec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "intro.ogv", ogg_codec, container_format="ogg")

    def no_decord(*args):
        raise AssertionError("decord must not be tried on Ogg files")

    monkeypatch.setattr(videos_module, "_with_decord", no_decord)
    check_frames(load_video_frames(path, 3, 32), 3)


def test_decord_frames_are_spread_over_the_video(make_video) -> None:
    pytest.importorskip("decord")
    indices = check_frames(videos_module._with_decord(str(make_video("spread.mp4")), 3, 32), 3)
    assert indices[-1] - indices[0] >= 20, indices


@pytest.mark.parametrize("kind", ["mp4-without-decord", "ogv"])
def test_pyav_frames_are_spread_over_the_video(
    tmp_path: Path, make_video, ogg_codec: str, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    if kind == "ogv":
        path = write_video(tmp_path / "spread.ogv", ogg_codec, container_format="ogg")
    else:
        path = make_video("spread.mp4")
        monkeypatch.setattr(videos_module, "_with_decord", _broken_decord)
    indices = check_frames(load_video_frames(path, 3, 32), 3)
    assert indices[-1] - indices[0] >= 20, indices  # the frames cover at least half of the 40-frame video


def test_all_black_video_still_gives_one_frame(make_video) -> None:
    path = make_video("black.mp4", frames=20, black=20)
    frames = load_video_frames(path, 3, 32)
    assert len(frames) == 1
    assert 0 <= frames[0].index < 20
    assert np.asarray(frames[0].image).mean() < 5


@pytest.mark.parametrize("name", ["random.mp4", "random.ogv"])
def test_corrupt_video_is_a_decode_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError) as info:
        load_video_frames(path, 3, 32)
    assert str(info.value)


def test_text_file_named_mp4_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 100)
    with pytest.raises(DecodeError):
        load_video_frames(path, 3, 32)


# ------------------------------------------------------------------------------------------ decoded_frames


@pytest.fixture
def media_dir(tmp_path: Path, tuxpaint_dir: Path, mp4_codec: str) -> Path:
    root = tmp_path / "media"
    (root / "animals").mkdir(parents=True)
    for cls, count in (("birds", 1), ("fish", 1)):
        for src in sorted((tuxpaint_dir / cls).glob("*.png"))[:count]:
            shutil.copy2(src, root / "animals" / src.name)
    half_red_half_blue(300, 200).save(root / "photo.jpg")
    (root / "broken.jpg").write_bytes(_valid_bytes("JPEG")[:300])
    (root / "clips").mkdir()
    write_video(root / "clips" / "intro.mp4", mp4_codec)
    (root / "readme.txt").write_text("not media")
    return root


GOOD_FILES = 4  # two real PNGs, one JPEG, one video


def test_decode_manifest_rows_errors_and_reuse(media_dir: Path) -> None:
    manifest = build_file_manifest(media_dir)
    options = DecodeOptions(thumbnail_size=32, frames_per_video=3, workers=2)

    frames, stats = decode_manifest(manifest, options)

    assert stats == {"reused": 0, "decoded": GOOD_FILES, "failed": 1}
    assert list(frames.columns) == FRAME_COLUMNS
    assert "readme.txt" not in set(frames["relative_path"])
    by_path = {p: g for p, g in frames.groupby("relative_path")}
    assert set(by_path) == {"animals/" + p.name for p in (media_dir / "animals").iterdir()} | {
        "photo.jpg",
        "broken.jpg",
        "clips/intro.mp4",
    }

    broken = by_path.pop("broken.jpg")
    assert len(broken) == 1
    assert isinstance(broken["error"].iloc[0], str) and broken["error"].iloc[0]
    assert broken["thumbnail"].iloc[0] is None
    assert broken["frame_index"].iloc[0] == -1

    video = by_path["clips/intro.mp4"]
    assert len(video) == 3
    assert list(video["frame_index"]) == sorted(video["frame_index"])
    assert (video["frame_index"] >= 10).all()
    for path, group in by_path.items():
        assert group["error"].isna().all(), path
        assert (group["kind"] == ("video" if path.endswith(".mp4") else "image")).all()
        for row in group.itertuples():
            assert isinstance(row.thumbnail, bytes) and row.thumbnail[:3] == b"\xff\xd8\xff"
            decoded = decode_jpeg(row.thumbnail)
            assert decoded.size == (row.width, row.height)
            assert min(decoded.size) <= 32
    manifest_hashes = dict(zip(manifest["relative_path"], manifest["content_hash"], strict=True))
    assert all(frames["content_hash"] == frames["relative_path"].map(manifest_hashes))

    again, stats2 = decode_manifest(manifest, options, reuse=frames)
    assert stats2["reused"] == GOOD_FILES
    assert stats2["decoded"] == 0
    assert stats2["failed"] == 1  # failures are retried, never reused
    good = frames[frames["error"].isna()].reset_index(drop=True)
    again_good = again[again["error"].isna()].reset_index(drop=True)
    assert list(again_good["relative_path"]) == list(good["relative_path"])
    assert list(again_good["thumbnail"]) == list(good["thumbnail"])


def test_decode_manifest_reuses_moved_files_under_their_new_name(media_dir: Path) -> None:
    options = DecodeOptions(thumbnail_size=32, frames_per_video=2, workers=1)
    first, _ = decode_manifest(build_file_manifest(media_dir), options)
    (media_dir / "photo.jpg").rename(media_dir / "animals" / "moved.jpg")

    second, stats = decode_manifest(build_file_manifest(media_dir), options, reuse=first)

    assert stats["reused"] == GOOD_FILES and stats["decoded"] == 0
    assert "photo.jpg" not in set(second["relative_path"])
    moved = second[second["relative_path"] == "animals/moved.jpg"]
    assert len(moved) == 1
    assert moved["thumbnail"].iloc[0] == first.loc[first["relative_path"] == "photo.jpg", "thumbnail"].iloc[0]


def test_unexpected_decoder_exception_becomes_an_error_row(media_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exploding(*args):
        raise ValueError("boom")

    monkeypatch.setattr(frames_module, "load_image_thumbnail", exploding)
    options = DecodeOptions(thumbnail_size=32, workers=2)
    frames, stats = decode_manifest(build_file_manifest(media_dir), options)
    images = frames[frames["kind"] == "image"]
    assert stats["failed"] == 4 and stats["decoded"] == 1  # every image fails, the video still decodes
    assert images["error"].str.contains("unexpected decoder error: ValueError: boom").all()


def test_decode_manifest_of_nothing_is_an_empty_typed_table(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    frames, stats = decode_manifest(build_file_manifest(tmp_path), DecodeOptions())
    assert frames.empty
    assert list(frames.columns) == FRAME_COLUMNS
    assert str(frames["frame_index"].dtype) == "int64"
    assert stats == {"reused": 0, "decoded": 0, "failed": 0}
