"""The FiftyOne App, in a real (headless Debian chromium) browser, showing our predictions and mistakes view.

Screenshots go to a temporary directory; with FIFTYONE_MSLITE_UPDATE_SCREENSHOTS=1 they replace
docs/images/app-*.png (shown in the README and docs/app.md).
"""
import os
import re
import shutil
import socket
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


def test_explore_embeddings(app, server, demo, tmp_path):
    import fiftyone.operators as foo
    (session, url), (dataset, _) = server, demo
    import concurrent.futures
    res = concurrent.futures.ThreadPoolExecutor(1).submit(foo.execute_operator, "@fiftyone-mslite/mslite/compute_embeddings",
                               ctx={"dataset": dataset.name, "params": {"model": "tv-mobilenet-v2", "embeddings_field": "embeddings", "brain_key": "embeddings_viz", "color_field": "eval"}}).result()
    assert res.error is None, res.error_message
    session.clear_view()
    app.open(url, len(dataset))
    page = app.page
    out = Path("/tmp/explore"); out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "0.png"))
    (out / "0.html").write_text(page.content())
    import time
    t = time.time()
    while not (out / "stop").exists() and time.time() - t < 1500:
        cmd = out / "cmd.py"
        if cmd.exists():
            code = cmd.read_text(); cmd.unlink()
            try:
                exec(code, {"page": page, "out": out, "dataset": dataset, "session": session})
                (out / "result.txt").write_text("ok")
            except Exception as e:
                (out / "result.txt").write_text(repr(e))
        page.wait_for_timeout(300)
