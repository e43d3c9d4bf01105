"""The viewer end to end in a real headless Chromium: real images, real clicks, hover, lasso, CSV, live reload.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``); skipped
with that instruction when they are missing. Leaves a screenshot in ``test-artifacts/viewer.png``.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dash_viewer.data import ViewerStore
from dash_viewer.figures import FIRST_GROUP_TRACE, drawn_state, group_ids
from neural_sorter_tests.dash_viewer.browser import chromium, serve
from neural_sorter_tests.viewer_store import real_image_store, write_asset

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
N_IMAGES = 30
TIMEOUT = 60  # a ceiling for each wait, not a sleep: CI machines may be loaded


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The viewer on a free localhost port, over a store materialized from 30 real images."""
    root = tmp_path_factory.mktemp("viewer-e2e")
    store, key, images = real_image_store(root, N_IMAGES)
    with serve(store, "viewer-e2e") as url:
        yield {"url": url, "store": store, "key": key, "images": images, "downloads": root / "downloads"}


@pytest.fixture(scope="module")
def browser(served: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), 1600, 1000, served["downloads"]) as driver:
        yield driver


def wait_for(driver: Any, condition: Callable[[Any], Any], message: str, timeout: float = TIMEOUT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)


def text_of(driver: Any, element_id: str) -> str:
    """The element's visible text, or "" while it is missing or being re-rendered."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        found = driver.find_elements(By.ID, element_id)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def choose_view(driver: Any, label: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//div[@id='view']//label[.//span[normalize-space()='{label}']]").click()


def point_offset(driver: Any, curve: int, number: int) -> tuple[float, float]:
    """Pixel offset from the 2D graph's centre of point ``number`` of trace ``curve``, from plotly's own axes."""
    offset = driver.execute_script(
        """
        const gd = document.querySelector('#map-2d .js-plotly-plot');
        const size = gd._fullLayout._size, xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const full = gd._fullData[arguments[0]];
        if (!full) { return null; }
        const rect = gd.getBoundingClientRect();
        const i = arguments[1];
        return [size.l + xa.l2p(full.x[i]) - rect.width / 2, size.t + ya.l2p(full.y[i]) - rect.height / 2];
        """,
        curve,
        number,
    )
    assert offset is not None, f"trace {curve} is not on the 2D map"
    return float(offset[0]), float(offset[1])


def points_box(driver: Any) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of all points, as offsets from the 2D graph's centre."""
    return tuple(
        driver.execute_script(
            """
            const gd = document.querySelector('#map-2d .js-plotly-plot');
            const size = gd._fullLayout._size, xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const rect = gd.getBoundingClientRect();
            let box = [Infinity, Infinity, -Infinity, -Infinity];
            for (let t = 2; t < gd._fullData.length; t++) {
                const full = gd._fullData[t];
                for (let i = 0; i < full.x.length; i++) {
                    const px = size.l + xa.l2p(full.x[i]) - rect.width / 2;
                    const py = size.t + ya.l2p(full.y[i]) - rect.height / 2;
                    box = [Math.min(box[0], px), Math.min(box[1], py), Math.max(box[2], px), Math.max(box[3], py)];
                }
            }
            return box;
            """
        )
    )


def scene_point_offset(driver: Any, curve: int, number: int) -> tuple[float, float] | None:
    """Pixel offset from the 3D graph's centre of point ``number`` of trace ``curve``, projected with the
    scene camera's own matrices (as plotly places 3D annotations); None when it is behind the camera."""
    offset = driver.execute_script(
        """
        const graph = document.getElementById('map-3d');
        const gd = graph.querySelector('.js-plotly-plot');
        const scene = gd._fullLayout.scene._scene, full = gd._fullData[arguments[0]], i = arguments[1];
        if (!full || !scene) { return null; }
        const s = scene.dataScale, c = scene.glplot.cameraParams;
        const apply = (m, v) => {
            const out = [0, 0, 0, 0];
            for (let r = 0; r < 4; r++) { for (let k = 0; k < 4; k++) { out[k] += m[4 * r + k] * v[r]; } }
            return out;
        };
        const p = apply(c.projection, apply(c.view, apply(c.model, [full.x[i] * s[0], full.y[i] * s[1],
                                                                      full.z[i] * s[2], 1])));
        if (p[3] <= 0) { return null; }
        const canvas = scene.glplot.canvas.getBoundingClientRect(), box = graph.getBoundingClientRect();
        const x = canvas.left + (1 + p[0] / p[3]) / 2 * canvas.width;
        const y = canvas.top + (1 - p[1] / p[3]) / 2 * canvas.height;
        return [x - (box.left + box.width / 2), y - (box.top + box.height / 2)];
        """,
        curve,
        number,
    )
    return None if offset is None else (float(offset[0]), float(offset[1]))


def test_viewer_in_a_real_browser(served: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, key, store = browser, served["key"], served["store"]
    projection = pd.read_parquet(store / "3d_projection" / f"{key}.parquet")
    names = [p.rsplit("/", 1)[-1] for p in projection["relative_path"]]
    driver.get(served["url"])

    # opens on the latest materialization and says what it is
    wait_for(driver, lambda d: text_of(d, "file-count") == f"{N_IMAGES} files", "header never said '30 files'")
    assert text_of(driver, "count") == f"{N_IMAGES} shown"
    header = text_of(driver, "run-info")
    assert "4 clusters" in header and "cnn" in header and "pca" in header
    wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map-3d .legend .traces")) == 4,
        "3D legend with one entry per cluster",
    )
    driver.execute_script("window.__sameDocument = true;")

    # text search explains itself for a non-CLIP partition
    driver.find_element(By.CSS_SELECTOR, "#text-query").send_keys("a red car")
    driver.find_element(By.ID, "text-search").click()
    wait_for(driver, lambda d: "CLIP embeddings" in text_of(d, "search-message"), "text search message")

    # the file-name filter redraws the map with fewer traces (and plotly must not choke on the trace ids)
    only = names[0]
    driver.find_element(By.CSS_SELECTOR, "#filter-name").send_keys(only)
    wait_for(driver, lambda d: text_of(d, "count") == f"1 of {N_IMAGES} shown", "name filter applied")
    wait_for(
        driver,
        lambda d: d.execute_script("return document.querySelectorAll('#map-3d .legend .traces').length") == 1,
        "legend shows one group",
    )
    driver.find_element(By.CSS_SELECTOR, "#filter-name").send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    wait_for(driver, lambda d: text_of(d, "count") == f"{N_IMAGES} shown", "name filter cleared")
    wait_for(
        driver,
        lambda d: d.execute_script("return document.querySelectorAll('#map-3d .legend .traces').length") == 4,
        "legend back to 4 groups",
    )

    # gallery: a real click on a thumbnail shows that file in the detail panel
    choose_view(driver, "Gallery")
    wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pane-gallery .tile")) == N_IMAGES,
        "gallery shows every file of this small partition",
    )
    tile = driver.find_elements(By.CSS_SELECTOR, "#pane-gallery .tile")[5]
    expected = tile.get_attribute("title").splitlines()[0].rsplit("/", 1)[-1]
    tile.click()
    wait_for(driver, lambda d: text_of(d, "detail-name") == expected, f"detail panel never showed {expected}")
    assert text_of(driver, "detail-path").endswith(expected)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#detail .tile")) == 8  # nearest neighbours

    # more like this: ranked look-alikes, all thumbnails really load, the picture itself excluded
    driver.find_element(By.ID, "more-like-this").click()
    wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results-body .tile")) == N_IMAGES - 1,
        "more like this listed the other files",
    )
    assert "More like " + expected in text_of(driver, "results-title")
    result_names = [
        t.get_attribute("title").splitlines()[0].rsplit("/", 1)[-1]
        for t in driver.find_elements(By.CSS_SELECTOR, "#results-body .tile")
    ]
    assert expected not in result_names
    wait_for(
        driver,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#results-body img')].every(i => i.complete && i.naturalWidth > 0)"
        ),
        "result thumbnails did not load",
    )

    # 2D view: hovering a point shows its thumbnail, clicking it selects it
    choose_view(driver, "2D select")
    wait_for(
        driver,
        lambda d: d.execute_script(
            "const g = document.querySelector('#map-2d .js-plotly-plot');"
            "return !!(g && g._fullData && g._fullData.length >= 6);"
        ),
        "2D map rendered",
    )
    data = ViewerStore(store, run_lookup=False).load(key)
    traces = group_ids(data, drawn_state(data, "cluster", None, None, None))
    target = int(traces[1][2])  # the third point of the second cluster: trace 3, point 2
    dx, dy = point_offset(driver, FIRST_GROUP_TRACE + 1, 2)
    graph = driver.find_element(By.ID, "map-2d")
    ActionChains(driver).move_to_element_with_offset(graph, dx, dy).perform()
    wait_for(driver, lambda d: names[target] in text_of(d, "tip-2d"), "hover tooltip with the file name")
    wait_for(
        driver,
        lambda d: d.execute_script(
            "const i = document.querySelector('#tip-2d img'); return !!(i && i.complete && i.naturalWidth > 0);"
        ),
        "hover thumbnail loaded",
    )
    ActionChains(driver).move_to_element_with_offset(graph, dx, dy).click().perform()
    wait_for(driver, lambda d: text_of(d, "detail-name") == names[target], "click on a 2D point selects it")

    # lasso around every point, then download the selection as CSV
    left, top, right, bottom = points_box(driver)
    pad = 18
    (
        ActionChains(driver)
        .move_to_element_with_offset(graph, right + pad, bottom + pad)
        .click_and_hold()
        .move_by_offset(0, -(bottom - top + 2 * pad))
        .move_by_offset(-(right - left + 2 * pad) / 2, 0)
        .move_by_offset(-(right - left + 2 * pad) / 2, 0)
        .move_by_offset(0, bottom - top + 2 * pad)
        .move_by_offset((right - left + 2 * pad) / 2, 0)
        .move_by_offset((right - left + 2 * pad) / 2 - 2, 0)
        .release()
        .perform()
    )
    wait_for(driver, lambda d: text_of(d, "lasso-summary") == f"{N_IMAGES} files selected", "lasso selection")
    driver.find_element(By.ID, "download-selection").click()
    target_csv = served["downloads"] / f"{key}-selection.csv"
    wait_for(driver, lambda d: target_csv.exists() and target_csv.stat().st_size > 0, "CSV download")
    rows = list(csv.DictReader(target_csv.open()))
    assert len(rows) == N_IMAGES
    assert {Path(r["path"]) for r in rows} == {served["images"] / p for p in projection["relative_path"]}

    # back to the 3D map for the picture of the whole thing
    choose_view(driver, "3D map")
    wait_for(driver, lambda d: "Nothing lassoed" not in text_of(d, "lasso-summary"), "selection kept")
    time.sleep(0.8)
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / "viewer.png"))

    # a newer materialization shows up by itself, without reloading the page
    newer = projection.iloc[:25].copy()
    write_asset(store, "3d_projection", key, newer)
    later = time.time_ns() + 2 * 10**9
    os.utime(store / "3d_projection" / f"{key}.parquet", ns=(later, later))
    wait_for(driver, lambda d: text_of(d, "file-count") == "25 files", "newer materialization picked up")
    wait_for(driver, lambda d: text_of(d, "count") == "25 shown", "map redrawn with the newer data")
    assert "Newer materialization loaded" in text_of(driver, "reload-note")
    assert driver.execute_script("return window.__sameDocument === true;"), "the page was reloaded"
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert not errors, errors


def test_copy_of_store_is_not_needed_for_thumbnails(served: dict[str, Any], browser: Any) -> None:
    """Thumbnails come from the store alone: with the source folder gone, pictures still load."""
    from selenium.webdriver.common.by import By

    moved = served["images"].with_name("photos-moved")
    shutil.move(served["images"], moved)
    try:
        browser.get(served["url"])
        wait_for(browser, lambda d: text_of(d, "file-count").endswith(" files"), "page loaded")
        choose_view(browser, "Gallery")
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#pane-gallery .tile img")) > 0, "gallery")
        wait_for(
            browser,
            lambda d: d.execute_script(
                "const imgs = [...document.querySelectorAll('#pane-gallery img')];"
                "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
            ),
            "thumbnails loaded",
        )
    finally:
        shutil.move(moved, served["images"])


def test_partition_picker_and_3d_clicks_with_the_mouse(served: dict[str, Any], browser: Any) -> None:
    """Issue 11: the picker's menu must open above the 3D map (a click on another entry used to land on the
    canvas), and a click on a point of the 3D map must select it, as in 2D. Only real mouse events here."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver, key, store = browser, served["key"], served["store"]
    shown = pd.read_parquet(store / "3d_projection" / f"{key}.parquet")
    other = "older-0badc0de"
    write_asset(store, "3d_projection", other, shown.iloc[:12].copy())
    older = time.time_ns() - 3600 * 10**9  # older than the shown partition, so the page still opens on that one
    os.utime(store / "3d_projection" / f"{other}.parquet", ns=(older, older))
    try:
        driver.get(served["url"])
        wait_for(driver, lambda d: text_of(d, "file-count") == f"{len(shown)} files", "page opened on the newest")
        wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#map-3d .legend .traces")) > 0, "3D map")

        # the picker, opened and used with the mouse: the entry is clicked where it is drawn
        picker = driver.find_element(By.ID, "partition")
        ActionChains(driver).move_to_element(picker).click().perform()
        entry = f"//*[contains(concat(' ', @class, ' '), ' dash-dropdown-option ') and contains(., '{other}')]"
        option = wait_for(
            driver,
            lambda d: next((e for e in d.find_elements(By.XPATH, entry) if e.is_displayed()), None),
            "the picker lists the second partition",
        )
        hit = driver.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);"
            "return !!top && arguments[0].contains(top);",
            option,
        )
        assert hit, "the picker's menu is covered (by the 3D map) where its entry is drawn"
        ActionChains(driver).move_to_element(option).click().perform()
        wait_for(driver, lambda d: text_of(d, "file-count") == "12 files", "clicking the entry switched partition")
        wait_for(driver, lambda d: text_of(d, "count") == "12 shown", "the map shows the other partition")

        # a real click on a point of the 3D map selects it (first a point that hovering shows is on top)
        data = ViewerStore(store, run_lookup=False).load(other)
        names = list(data.points["name"])
        graph = driver.find_element(By.ID, "map-3d")
        wait_for(
            driver,
            lambda d: d.execute_script(
                "const g = document.querySelector('#map-3d .js-plotly-plot');"
                "return !!(g && g._fullLayout && g._fullLayout.scene && g._fullLayout.scene._scene"
                " && g._fullData.length >= 3 && g._fullData[2].x.length > 0);"
            ),
            "3D scene drawn",
        )
        time.sleep(0.5)
        target = None
        for group, members in enumerate(group_ids(data, drawn_state(data, "cluster", None, None, None))):
            for number, idx in enumerate(members.tolist()):
                offset = scene_point_offset(driver, FIRST_GROUP_TRACE + group, number)
                if offset is None:
                    continue
                ActionChains(driver).move_to_element_with_offset(graph, *offset).perform()
                with contextlib.suppress(Exception):
                    wait_for(driver, lambda d, i=idx: names[i] in text_of(d, "tip-3d"), "hover", timeout=3)
                    target = (idx, offset)
                    break
            if target:
                break
        assert target is not None, "no point of the 3D map showed its tooltip under the mouse"
        idx, offset = target
        assert text_of(driver, "detail-name") != names[idx]
        ActionChains(driver).move_to_element_with_offset(graph, *offset).click().perform()
        wait_for(driver, lambda d: text_of(d, "detail-name") == names[idx], "a click on a 3D point selects it")
        assert text_of(driver, "detail-path").endswith(names[idx])
    finally:
        (store / "3d_projection" / f"{other}.parquet").unlink()
