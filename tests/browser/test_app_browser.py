"""The FiftyOne App, in a real (headless Debian chromium) browser, showing our predictions, the mistakes view and
the Embeddings panel on a map our compute-embeddings operator made.

Screenshots go to a temporary directory; with FIFTYONE_MSLITE_UPDATE_SCREENSHOTS=1 they replace
docs/images/app-*.png (shown in the README and docs/app.md).
"""
import io
import os
import re
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.shared

CHROMIUM = os.environ.get("FIFTYONE_MSLITE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DATASET = "mslite-app-demo"
NUM_IMAGES = 48
TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(imagenet_dir, tv_mobilenet, tmp_path_factory):
    """ImageNet samples spread over the 1000 classes, labelled by MobileNetV2, evaluated (saved mistakes view)."""
    from fiftyone_mslite.integration.annotation import annotate
    from fiftyone_mslite.integration.datasets import import_directory
    from fiftyone_mslite.integration.evaluation import evaluate

    files = sorted(imagenet_dir.glob("*.JPEG"))
    folder = tmp_path_factory.mktemp("app-images")
    for f in files[:: len(files) // NUM_IMAGES][:NUM_IMAGES]:
        (folder / f.name).symlink_to(f)
    dataset = import_directory(DATASET, folder, labels_from="filename-synset", overwrite=True)
    annotate(dataset, tv_mobilenet, "predictions", progress=False)
    summary = evaluate(dataset, "predictions")
    assert 0 < summary.num_mistakes < NUM_IMAGES
    yield dataset, summary
    dataset.delete()


@pytest.fixture(scope="module")
def server(demo):
    """(App session, dataset page URL). The session's state outlives a page: a view one test opened stays
    for the next, so tests that want the whole dataset clear it first."""
    import fiftyone as fo

    from fiftyone_mslite.integration.zoo import install_plugin

    install_plugin()  # the server process finds it through FIFTYONE_PLUGINS_DIR, set by conftest
    dataset, _ = demo
    port = _free_port()
    session = fo.launch_app(dataset, remote=True, port=port, address="127.0.0.1", auto=False)
    yield session, f"http://127.0.0.1:{port}/datasets/{DATASET}"
    session.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the 'test' extra)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no browser at {CHROMIUM}: run scripts/install-browser.sh (Debian's chromium)")
    with sync_api.sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # installed but broken (missing libraries, sandbox, ...): a real failure
            pytest.fail(f"{CHROMIUM} is installed but did not start headless: {exc}")
        yield chromium
        chromium.close()


class AppPage:
    """A browser tab on the App that counts the sample images the server delivered."""

    def __init__(self, page):
        self.page, self.images = page, 0
        # Offline: the App asks Google for fonts; refuse everything but the local server at once.
        page.route(re.compile(r"^https?://(?!127[.]0[.]0[.]1[:/])"), lambda route: route.abort())
        page.on("response", self._count)

    def _count(self, response) -> None:
        if "/media?" in response.url and response.ok:
            self.images += 1

    def operator(self, label: str) -> None:
        """Open an operator's form through the App's operator browser."""
        self.page.locator("[data-cy=action-browse-operations]").click()
        self.page.keyboard.type(label)
        self.page.keyboard.press("Enter")
        self.page.get_by_text("Execute", exact=True).wait_for(timeout=TIMEOUT_MS)

    def fill(self, label: str, value: str) -> None:
        """Type into the form's text input that follows the field label."""
        box = self.page.locator(f"xpath=//*[normalize-space(text())='{label}']/following::input[1]")
        box.fill(value)

    def choose(self, label: str, option: str) -> None:
        """Pick an option of the form's dropdown that follows the field label."""
        self.page.locator(f"xpath=//*[normalize-space(text())='{label}']/following::*[@role='combobox'][1]").click()
        self.page.get_by_role("option", name=option, exact=True).click()

    def open(self, url: str, count: int) -> str:
        """Load a dataset page; wait for '<count> samples' and the first row(s) of images. Returns the text."""
        page = self.page
        page.goto(url, wait_until="load")
        page.get_by_text(f"{count} samples", exact=True).wait_for(timeout=TIMEOUT_MS)
        dismiss = page.get_by_text("Dismiss", exact=True)  # the "Explore Enterprise" pop-up covers the grid
        if dismiss.count():
            dismiss.click()
        want = min(count, 12)
        for _ in range(TIMEOUT_MS // 250):
            if self.images >= want:
                break
            page.wait_for_timeout(250)
        assert self.images >= want, f"the App delivered {self.images} of the first {want} images"
        page.wait_for_timeout(1500)  # let the grid paint the tiles it just received
        return page.inner_text("body")


@pytest.fixture()
def app(browser):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    yield AppPage(page)
    page.close()


def _screenshot(page, name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("FIFTYONE_MSLITE_UPDATE_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[2] / "docs" / "images" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return path


def _visible(text: str, labels: list[str]) -> int:
    """How many of these class names the grid's tiles show (a tile's label text concatenates its labels)."""
    return sum(label in text for label in set(labels))


def test_app_shows_predictions(app, server, demo, tmp_path):
    (session, url), (dataset, _) = server, demo
    session.clear_view()
    text = app.open(url, len(dataset))
    page = app.page
    assert DATASET in page.content()
    for field in ("predictions", "ground_truth"):
        assert field in text.split("\n"), f"sidebar lacks the '{field}' field"
    assert _visible(text, dataset.values("predictions.label")), "no predicted class name is visible in the grid"
    assert _screenshot(page, "app-predictions.png", tmp_path).stat().st_size > 10_000


def test_app_opens_the_mistakes_view(app, server, demo, tmp_path):
    (_, url), (dataset, summary) = server, demo
    view = dataset.load_saved_view(summary.mistakes_view)
    slug = dataset._get_saved_view_doc(summary.mistakes_view).slug
    text = app.open(f"{url}?view={slug}", summary.num_mistakes)
    page = app.page
    assert summary.mistakes_view in text.split("\n"), "the saved view's name is not shown in the view selector"
    wrong = [p for p, g in zip(*view.values(["predictions.label", "ground_truth.label"])) if p != g]
    assert _visible(text, wrong), "the mistaken predictions are not visible in the grid"
    assert _screenshot(page, "app-mistakes.png", tmp_path).stat().st_size > 10_000


def test_operators_run_from_the_app(app, server, demo, tmp_path):
    """Our plugin's forms in the real App: apply a catalog model, then evaluate and land on the mistakes view."""
    (session, url), (dataset, _) = server, demo
    session.clear_view()
    app.open(url, len(dataset))
    page = app.page

    app.operator("MindSpore Lite: apply model")
    app.choose("Model", "tv-mobilenet-v2")
    app.fill("Label field", "app_predictions")
    page.get_by_text("Execute", exact=True).click()
    page.get_by_text(f"labeled {len(dataset)} samples into 'app_predictions'").wait_for(timeout=TIMEOUT_MS)
    page.get_by_text("app_predictions", exact=True).first.wait_for(timeout=TIMEOUT_MS)  # sidebar, after reload
    page.get_by_text(f"{len(dataset)}/{len(dataset)} samples", exact=True).wait_for()  # the progress dialog
    page.wait_for_timeout(3000)  # the reloaded grid repaints behind the dialog
    _screenshot(page, "app-apply-model.png", tmp_path)
    page.get_by_text("Done", exact=True).click()
    dataset.reload()
    assert dataset.values("app_predictions.label") == dataset.values("predictions.label")

    app.operator("MindSpore Lite: evaluate predictions")
    app.choose("Predictions", "app_predictions")
    app.fill("Evaluation key", "app_eval")
    page.get_by_text("Required property").first.wait_for(state="hidden", timeout=TIMEOUT_MS)  # form validated
    page.wait_for_timeout(1000)
    _screenshot(page, "app-evaluate-form.png", tmp_path)
    page.get_by_text("Execute", exact=True).click()
    page.get_by_text("app_eval-mistakes", exact=True).wait_for(timeout=TIMEOUT_MS)  # in the results dialog
    assert "app_eval" in dataset.list_evaluations()
    mistakes = dataset.load_saved_view("app_eval-mistakes")
    _screenshot(page, "app-evaluate-results.png", tmp_path)
    page.get_by_text("Close", exact=True).click()
    page.get_by_text(f"{len(mistakes)} samples", exact=True).wait_for(timeout=TIMEOUT_MS)  # now on the mistakes
    page.get_by_text("app_eval", exact=True).first.wait_for(timeout=TIMEOUT_MS)  # the new per-sample field
    assert 0 < len(mistakes) < len(dataset)



RIGHT, WRONG = "#33cc33", "#ee0000"  # the eval field's colours (the App's default pool puts two dark greens)


def _coloured_pixels(png: bytes) -> tuple[int, int]:
    """(green, red) pixels of a screenshot: points coloured RIGHT and WRONG (drawn translucent: about
    (48, 127, 48) and (144, 21, 21) on the dark background)."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((g > 90) & (g > 2 * r) & (g > 2 * b)).sum()), int(((r > 90) & (r > 3 * g) & (r > 3 * b)).sum())


def test_app_embeddings_panel(app, server, demo, tmp_path):
    """Our operator computes embeddings and a 2-D map; the App's Embeddings panel lists the brain key and draws the
    points, coloured by the evaluation's right/wrong field."""
    import fiftyone as fo
    import fiftyone.operators as foo

    (session, url), (dataset, summary) = server, demo
    params = {"model": "tv-mobilenet-v2", "embeddings_field": "embeddings", "brain_key": "embeddings_viz",
              "color_field": summary.eval_key}
    ctx = {"dataset": dataset.name, "params": params}
    with ThreadPoolExecutor(1) as pool:  # playwright's loop runs in this thread: the executor needs its own
        result = pool.submit(foo.execute_operator, "@fiftyone-mslite/mslite/compute_embeddings", ctx=ctx).result()
    assert result.error is None, result.error_message
    dataset.reload()
    assert "embeddings_viz" in dataset.list_brain_runs() and dataset.count("embeddings") == len(dataset)
    right, wrong = (dataset.count_values(summary.eval_key).get(v, 0) for v in (True, False))
    assert wrong == summary.num_mistakes

    before = session.color_scheme
    session.color_scheme = fo.ColorScheme(fields=[{"path": summary.eval_key, "valueColors": [
        {"value": "true", "color": RIGHT}, {"value": "false", "color": WRONG}]}])
    session.clear_view()
    try:
        app.open(url, len(dataset))
        page = app.page
        page.locator("[data-cy=new-panel-btn]").first.click()
        page.get_by_text("Embeddings", exact=True).last.click()  # the new-panel menu's entry
        runs = page.locator("[data-cy=embeddings-runs-page]")
        runs.get_by_text("embeddings_viz", exact=True).wait_for(timeout=TIMEOUT_MS)  # the brain key's card
        assert "pre-computed embeddings" in runs.inner_text()
        teaser = runs.get_by_text("Dismiss", exact=True)  # an Enterprise advert above the runs
        if teaser.count():
            teaser.click()
        runs.get_by_text("embeddings_viz", exact=True).click()
        page.get_by_text(f"{len(dataset)} points", exact=True).wait_for(timeout=TIMEOUT_MS)
        page.get_by_label("Color by", exact=True).click()
        page.get_by_role("option", name=summary.eval_key, exact=True).click()
        legend = page.locator(".emb-legend")
        legend.get_by_text("false", exact=True).wait_for(timeout=TIMEOUT_MS)
        rows = dict(zip(legend.locator(".emb-legend-label").all_inner_texts(),
                        legend.locator(".emb-legend-count").all_inner_texts()))
        assert rows == {"true": str(right), "false": str(wrong)}, rows
        plot = page.locator("canvas[data-engine^='three.js']")
        assert plot.count() == 1 and plot.bounding_box()["width"] > 300
        for _ in range(TIMEOUT_MS // 500):  # the points are drawn (WebGL) once their colours arrive
            green, red = _coloured_pixels(plot.screenshot(mask=[page.locator(".emb-floating-panel")]))
            if green and red:
                break
            page.wait_for_timeout(500)
        assert green > red > 0, f"{green} green and {red} red pixels in the plot: the points are not drawn"
        text = page.inner_text("body")
        assert "Embeddings" in text and "embeddings_viz" in text and f"Color by\n{summary.eval_key}" in text
        assert _screenshot(page, "app-embeddings.png", tmp_path).stat().st_size > 10_000
    finally:
        session.color_scheme = before
