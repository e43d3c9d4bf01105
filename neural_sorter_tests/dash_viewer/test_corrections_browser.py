"""Hand corrections end to end (issue 12): a folder sorted by the real CLI, then in a real headless Chromium a
cluster renamed, two clusters merged, one file moved with the 2D lasso and one picked in the gallery, Apply
(the viewer re-sorts the folder with ``neural-sorter sort``); a later re-sort with a new file keeps every
correction, and ``neural-sorter undo`` takes both runs back. Only real mouse and keyboard events.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from neural_sorter_tests.dash_viewer.browser import chromium, serve
from neural_sorter_tests.dash_viewer.test_viewer_browser import (
    choose_view,
    points_box,
    text_of,
    wait_for,
)
from neural_sorter_tests.viewer_store import TUXPAINT, copy_images, tuxpaint_available

pytestmark = [pytest.mark.slow, pytest.mark.browser]

N_IMAGES = 24
CONFIG = "backend: cnn\nmethod: kmeans\nk: 4\nprojection: pca\n"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("neural-sorter")
    done = subprocess.run([str(command), *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A folder of real images sorted once by the CLI into its own home; the environment points every later
    ``neural-sorter`` (the viewer's Apply included) at that home and config."""
    if not tuxpaint_available():
        pytest.skip("real-image data set ../shared/datasets/tuxpaint8 not found")
    root = tmp_path_factory.mktemp("corrections-e2e")
    images = copy_images(root / "photos", N_IMAGES)
    (root / "config.yaml").write_text(CONFIG)
    saved = {
        k: os.environ.get(k)
        for k in ("NEURAL_SORTER_HOME", "NEURAL_SORTER_CONFIG", "NEURAL_SORTER_STORE", "DAGSTER_HOME", "HF_HUB_OFFLINE")
    }
    os.environ.update(
        NEURAL_SORTER_HOME=str(root / "home"), NEURAL_SORTER_CONFIG=str(root / "config.yaml"), HF_HUB_OFFLINE="1"
    )
    os.environ.pop("DAGSTER_HOME", None)
    os.environ.pop("NEURAL_SORTER_STORE", None)
    try:
        out = root / "sorted"
        run_cli("sort", str(images), "--out", str(out), "--json")
        yield {"root": root, "images": images, "out": out, "store": root / "home" / "store"}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def served(sorted_folder: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with serve(sorted_folder["store"], "corrections-e2e", warm=False) as url:
        yield {**sorted_folder, "url": url, "downloads": sorted_folder["root"]}


@pytest.fixture(scope="module")
def browser(served: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), 1600, 1400) as driver:
        yield driver


def choose(driver: Any, dropdown_id: str, label: str) -> None:
    """Opens a dropdown with the mouse and clicks the entry whose label starts with ``label``."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, dropdown_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    ActionChains(driver).move_to_element(box).click().perform()
    option_class = "contains(concat(' ', @class, ' '), ' dash-dropdown-option ')"
    entry = f"//*[{option_class} and starts-with(normalize-space(.), '{label} (')]"
    option = wait_for(
        driver,
        lambda d: next((e for e in d.find_elements(By.XPATH, entry) if e.is_displayed()), None),
        f"{dropdown_id} lists {label}",
    )
    ActionChains(driver).move_to_element(option).click().perform()
    ActionChains(driver).send_keys("\ue00c").perform()  # Escape closes a multi-select's menu


def click(driver: Any, element_id: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    button = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    wait_for(driver, lambda d: button.is_enabled(), f"{element_id} enabled")
    ActionChains(driver).move_to_element(button).click().perform()


def type_into(driver: Any, element_id: str, text: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
    ActionChains(driver).move_to_element(field).click().send_keys(text).perform()


def filter_by_name(driver: Any, name: str, count: str, attempts: int = 3) -> None:
    """Types ``name`` into the name filter until the count reads ``count``: a re-render that lands while the
    keys are being typed (the merge just before refreshes the page's data) can drop keystrokes, so the field is
    cleared and typed again, up to ``attempts`` times, before the test fails."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    for attempt in range(attempts):
        field = driver.find_element(By.ID, "filter-name")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
        chain = ActionChains(driver).move_to_element(field).click()
        chain.key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).send_keys(Keys.BACKSPACE).send_keys(name)
        chain.perform()
        try:
            wait_for(driver, lambda d_: text_of(d_, "count") == count, "name filter down to one file", timeout=20)
            return
        except TimeoutException:
            if attempt == attempts - 1:
                raise


def placed(out: Path) -> dict[str, str]:
    """file name -> the cluster folder it sits in, for every file under the output folder."""
    return {p.name: p.parent.name for p in out.rglob("*") if p.is_file() and ".neural-sorter" not in p.parts}


def test_rename_merge_move_apply_resort_and_undo(served: dict[str, Any], browser: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver, store, out, images = browser, served["store"], served["out"], served["images"]
    (key,) = [p.stem for p in (store / "clusters").glob("*.parquet")]
    before = pd.read_parquet(store / "clusters" / f"{key}.parquet")
    names = before.groupby("cluster_id")["cluster_name"].first().to_dict()
    sizes = before["cluster_id"].value_counts()
    assert len(names) == 4, names
    a, b, c, d = sorted(names, key=lambda cid: (-sizes[cid], cid))  # d: the smallest
    members = {cid: set(before.loc[before["cluster_id"] == cid, "relative_path"]) for cid in names}
    everything = list(before["relative_path"])

    def unique_name(path: str) -> bool:  # the file-name filter finds only this file
        return sum(path.rsplit("/", 1)[-1].lower() in p.lower() for p in everything) == 1

    moved_lasso = next(p for p in sorted(members[d]) + sorted(members[c]) if unique_name(p))
    moved_pick = next(p for p in sorted(members[d]) + sorted(members[a]) if p != moved_lasso)
    first_layout = placed(out)
    assert len(first_layout) == N_IMAGES

    driver.get(served["url"])
    wait_for(driver, lambda d_: text_of(d_, "file-count") == f"{N_IMAGES} files", "page opened on the sorted folder")

    # rename cluster a
    choose(driver, "corr-cluster", names[a])
    type_into(driver, "corr-name", "hand renamed")
    click(driver, "corr-rename")
    wait_for(driver, lambda d_: "Saved: renamed" in text_of(d_, "corr-message"), "rename saved")
    wait_for(driver, lambda d_: f"renamed {names[a]} to hand renamed" in text_of(d_, "corr-list"), "rename listed")
    wait_for(driver, lambda d_: "Hand corrections shown" in text_of(d_, "reload-note"), "header says why it changed")

    # merge b into c
    choose(driver, "corr-merge-from", names[b])
    choose(driver, "corr-merge-into", names[c])
    click(driver, "corr-merge")
    wait_for(driver, lambda d_: f"merged {names[b]} into {names[c]}" in text_of(d_, "corr-list"), "merge listed")

    # move one file of d with the 2D lasso: filter down to that file, lasso around it, move it to "hand renamed"
    choose_view(driver, "2D select")
    lasso_name = moved_lasso.rsplit("/", 1)[-1]
    filter_by_name(driver, lasso_name, f"1 of {N_IMAGES} shown")
    wait_for(
        driver,
        lambda d_: d_.execute_script(
            "const g = document.querySelector('#map-2d .js-plotly-plot');"
            "return !!(g && g._fullData && g._fullData.filter(t => t.x && t.x.length).length >= 1"
            " && document.getElementById('count').textContent.startsWith('1 of'));"
        ),
        "2D map shows the one file",
    )
    left, top, right, bottom = points_box(driver)
    graph = driver.find_element(By.ID, "map-2d")
    pad = 24
    (
        ActionChains(driver)
        .move_to_element_with_offset(graph, right + pad, bottom + pad)
        .click_and_hold()
        .move_by_offset(0, -(bottom - top + 2 * pad))
        .move_by_offset(-(right - left + 2 * pad), 0)
        .move_by_offset(0, bottom - top + 2 * pad)
        .move_by_offset(right - left + 2 * pad - 2, 0)
        .release()
        .perform()
    )
    wait_for(driver, lambda d_: text_of(d_, "lasso-summary") == "1 file selected", "lasso around the file")
    choose(driver, "corr-move-to", "hand renamed")
    wait_for(driver, lambda d_: text_of(d_, "corr-move") == "Move 1 file", "move button counts the lasso")
    click(driver, "corr-move")
    wait_for(driver, lambda d_: "moved 1 file to hand renamed" in text_of(d_, "corr-list"), "lasso move listed")
    field = driver.find_element(By.ID, "filter-name")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
    field.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    wait_for(driver, lambda d_: text_of(d_, "count") == f"{N_IMAGES} shown", "filter cleared")

    # move another file picked in the gallery to the merged cluster
    choose_view(driver, "Gallery")
    tile_xpath = f"//div[@id='pane-gallery']//button[starts-with(@title, '{moved_pick}')]"
    tile = wait_for(driver, lambda d_: next(iter(d_.find_elements(By.XPATH, tile_xpath)), None), "gallery tile")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", tile)
    ActionChains(driver).move_to_element(tile).click().perform()
    pick_name = moved_pick.rsplit("/", 1)[-1]
    wait_for(driver, lambda d_: text_of(d_, "detail-name") == pick_name, "picked file shown in the detail")
    click(driver, "pick")
    wait_for(driver, lambda d_: text_of(d_, "pick").startswith("Picked"), "file picked")
    choose(driver, "corr-move-to", names[c])
    click(driver, "corr-move")
    wait_for(driver, lambda d_: f"moved 1 file to {names[c]}" in text_of(d_, "corr-list"), "pick move listed")
    assert text_of(driver, "corr-list").count("pending") == 4

    # the map already shows the corrections (before any file moved)
    from dash_viewer.data import ViewerStore

    viewer_points = ViewerStore(store, run_lookup=False).load(key).points.set_index("relative_path")
    assert viewer_points.at[moved_lasso, "cluster_name"] == "hand renamed"
    assert placed(out) == first_layout  # nothing moved yet

    # Apply: the viewer re-sorts the folder (neural-sorter sort in a subprocess)
    click(driver, "corr-apply")
    wait_for(
        driver,
        lambda d_: d_.execute_script("return !!document.querySelector('#corr-status .resort');"),
        "re-sort started",
        timeout=60,
    )
    wait_for(
        driver,
        lambda d_: d_.execute_script(
            "const s = document.querySelector('#corr-status .resort');"
            "return s && s.dataset.state !== 'running' ? s.dataset.state : null;"
        ),
        "re-sort finished",
        timeout=600,
    )
    status = text_of(driver, "corr-status")
    assert status.startswith("Applied"), status
    assert f"neural-sorter undo {out}" in status
    wait_for(driver, lambda d_: "pending" not in text_of(d_, "corr-list"), "corrections shown as applied")
    assert "Newer materialization loaded" in text_of(driver, "reload-note")

    def expected_layout(table: pd.DataFrame) -> None:
        rows = table.set_index("relative_path")
        renamed = (members[a] | {moved_lasso}) - {moved_pick}
        assert set(table.loc[table["cluster_name"] == "hand renamed", "relative_path"]) >= renamed
        merged = (members[b] | members[c] | {moved_pick}) - {moved_lasso}
        assert {rows.at[p, "cluster_name"] for p in merged} == {names[c]}
        on_disk = placed(out)
        for path in rows.index:
            assert on_disk[path.rsplit("/", 1)[-1]] == rows.at[path, "cluster_name"], path

    applied = pd.read_parquet(store / "clusters" / f"{key}.parquet")
    expected_layout(applied)
    after_apply = placed(out)
    assert after_apply != first_layout

    # a later re-sort (as the schedule or the CLI would run it) with one new file keeps every correction
    extra = sorted((TUXPAINT / "mammals").glob("*.png"))[0]
    shutil.copy2(extra, images / extra.name)
    run_cli("sort", str(images), "--json")
    resorted = pd.read_parquet(store / "clusters" / f"{key}.parquet")
    assert extra.name in set(resorted["relative_path"])
    expected_layout(resorted)

    # undo reverts the re-sort, then the applied corrections: the files are back where the first sort put them
    run_cli("undo", str(out))
    assert placed(out) == after_apply
    run_cli("undo", str(out))
    assert placed(out) == first_layout
    with contextlib.suppress(Exception):
        driver.save_screenshot(str(Path(__file__).resolve().parents[2] / "test-artifacts" / "corrections.png"))
