"""Copies and quality flags in a real headless Chromium (issue 13), only real mouse events: the gallery and
"more like this" show one picture per duplicate group with an "N copies" badge; the duplicates view shows a
group's copies side by side (size, format, path, tier, similarity); "Keep this" on another copy makes it the
one kept (stored as a ``keep`` correction, previewed at once); the flag filter finds the darkened picture and
the detail panel shows its flag and scores.

The store: 24 real images plus a byte copy, a resized JPEG copy and a mirrored copy of one of them and a
darkened copy of another (``viewer_store.add_duplicates``), through the pipeline's own stage functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from dash_viewer.data import ViewerStore
from neural_sorter.corrections import load_corrections
from neural_sorter.store import Store
from neural_sorter_tests.dash_viewer.browser import chromium, serve
from neural_sorter_tests.dash_viewer.test_corrections_browser import choose
from neural_sorter_tests.dash_viewer.test_viewer_browser import (
    ARTIFACTS,
    choose_view,
    text_of,
    wait_for,
)
from neural_sorter_tests.viewer_store import real_image_store

pytestmark = [pytest.mark.slow, pytest.mark.browser]

N_IMAGES = 24
N_FILES = N_IMAGES + 4  # three copies of one picture and one darkened picture


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("duplicates-e2e")
    store, key, images = real_image_store(root, N_IMAGES, duplicates=True)
    with serve(store, "duplicates-e2e", warm=False) as url:
        yield {"url": url, "store": store, "key": key, "images": images}


@pytest.fixture(scope="module")
def browser(served: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), 1600, 1200) as driver:
        yield driver


def mouse_click(driver: Any, element: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    ActionChains(driver).move_to_element(element).click().perform()


def tiles(driver: Any, pane: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, f"#{pane} .tile")


def tile_paths(driver: Any, pane: str) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(t => t.title.split('\\n')[0]);", f"#{pane} .tile"
    )


def test_copies_duplicates_view_keep_and_flag_filter(served: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver, store, key = browser, served["store"], served["key"]
    points = ViewerStore(store, run_lookup=False).load(key).points
    grouped = points[points["duplicate_group"].notna()]
    assert len(grouped) == 4 and grouped["duplicate_group"].nunique() == 1, grouped
    members = set(grouped["relative_path"])
    (kept_first,) = grouped.loc[grouped["is_representative"], "relative_path"]
    mirrored = next(p for p in members if p.endswith(" mirrored.png"))
    dark = next(p for p in points["relative_path"] if p.endswith(" dark.png"))
    distinct = N_FILES - 3

    driver.get(served["url"])
    wait_for(driver, lambda d: text_of(d, "file-count") == f"{N_FILES} files", "page opened")

    # gallery: one tile per picture, the group's kept copy with a "4 copies" badge
    choose_view(driver, "Gallery")
    wait_for(driver, lambda d: len(tiles(d, "pane-gallery")) == distinct, "one tile per distinct picture")
    shown = tile_paths(driver, "pane-gallery")
    assert len(shown) == len(set(shown)) and len(members & set(shown)) == 1 and kept_first in shown
    badge = driver.find_element(By.XPATH, f"//div[@id='pane-gallery']//button[starts-with(@title, '{kept_first}')]")
    assert badge.find_element(By.CSS_SELECTOR, ".copies").text == "4 copies"
    with contextlib.suppress(Exception):
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "gallery-copies.png"))

    # selecting it: the detail says so; "more like this" lists other pictures, none of its copies
    mouse_click(driver, badge)
    wait_for(driver, lambda d: "4 copies" in text_of(d, "detail-copies"), "detail shows the copies")
    assert "kept" in text_of(driver, "detail-copies")
    mouse_click(driver, driver.find_element(By.ID, "more-like-this"))
    wait_for(driver, lambda d: len(tiles(d, "results-body")) == distinct - 1, "more like this: distinct pictures")
    assert not members & set(tile_paths(driver, "results-body"))

    # the duplicates view: the group's four copies side by side, sizes, formats, paths
    choose_view(driver, "Duplicates")
    cards = wait_for(
        driver,
        lambda d: (lambda c: c if len(c) == 4 else None)(
            d.find_elements(By.CSS_SELECTOR, "#pane-duplicates .dup-card")
        ),
        "the group's four copies",
    )
    boxes = [c.rect for c in cards]
    assert len({round(b["y"]) for b in boxes}) == 1, "copies are side by side"
    assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
    text = driver.find_element(By.ID, "pane-duplicates").text
    assert "4 copies" in text and "JPEG" in text and "PNG" in text and "×" in text
    assert all(path in text for path in members)
    assert cards[0].get_attribute("data-path") == kept_first and "kept" in cards[0].get_attribute("class")

    with contextlib.suppress(Exception):
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "duplicates.png"))

    # keep the mirrored copy instead
    card = next(c for c in cards if c.get_attribute("data-path") == mirrored)
    mouse_click(driver, card.find_element(By.XPATH, ".//button[normalize-space()='Keep this']"))
    wait_for(driver, lambda d: "Saved: keep" in text_of(d, "corr-message"), "keep choice saved")
    wait_for(
        driver,
        lambda d: d.execute_script(
            "const c = document.querySelector('#pane-duplicates .dup-card');"
            "return !!c && c.dataset.path === arguments[0] && c.classList.contains('kept');",
            mirrored,
        ),
        "the chosen copy is now the one kept (first, marked)",
    )
    assert f"keep {mirrored} of its 4 copies" in text_of(driver, "corr-list")
    (choice,) = load_corrections(Store(store), key)
    assert choice["op"] == "keep" and choice["path"] == mirrored
    after = ViewerStore(store, run_lookup=False).load(key).points.set_index("relative_path")
    assert bool(after.at[mirrored, "is_representative"]) and not bool(after.at[kept_first, "is_representative"])
    assert set(after.loc[list(members), "representative"]) == {mirrored}
    choose_view(driver, "Gallery")
    wait_for(driver, lambda d: mirrored in tile_paths(d, "pane-gallery"), "the gallery shows the chosen copy")
    assert kept_first not in tile_paths(driver, "pane-gallery")

    # the flag filter: only the darkened picture; its flag and scores in the detail panel
    choose(driver, "filter-flags", "too dark")
    wait_for(driver, lambda d: tile_paths(d, "pane-gallery") == [dark], "flag filter shows the dark picture")
    assert text_of(driver, "count") == f"1 of {N_FILES} shown"
    mouse_click(driver, tiles(driver, "pane-gallery")[0])
    wait_for(driver, lambda d: "too dark" in text_of(d, "detail-flags"), "detail shows the flag")
    flagged = driver.find_elements(By.CSS_SELECTOR, "#detail .score-row.flagged")
    assert [row.text.splitlines()[0] for row in flagged] == ["too dark"]
    assert "flag < 0.3" in flagged[0].text
    with contextlib.suppress(Exception):
        driver.save_screenshot(str(ARTIFACTS / "flags.png"))
    choose_view(driver, "Duplicates")
    wait_for(driver, lambda d: "No duplicate groups" in text_of(d, "pane-duplicates"), "no group among flagged")
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not errors, errors
