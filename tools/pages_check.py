"""Opens the demo's pages in a real browser: `make pages-check` (after `make demo`).

Headless Chromium (Debian's: `apt-get install chromium`) driven by Playwright opens the
ranking page (`serving.predict --html`), the evaluation's report.html and the build's
report.html at a desktop and a phone width. For each it checks that the page loads in under
a second with no script error and no missing file, that every image shows once scrolled to,
and that the page is no wider than the window (wide tables scroll in their own box); on the
ranking page it sorts and filters as a person would. A ranking of 1,000 photos is written
and weighed too (under 5 MB with its thumbnails). Screenshots go to --out, to be looked at.
Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

import tensorflow_datasets as tfds

import ava_tfds  # noqa: F401  (registers `ava`)
from ava_core.pages import files_dir
from ava_tfds.ava import ava_dataset_builder, transforms
from trainer import evaluate

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # what this sandbox's closed network needs: no background connections
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
WIDTHS = {"desktop": 1280, "phone": 390}
LOAD_SECONDS, PAGE_MEGABYTES, SIZE_PHOTOS = 1.0, 5.0, 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="workdir", help="make demo's WORKDIR")
    parser.add_argument("--out", default="", help="where the screenshots go (default WORKDIR/pages-check)")
    args = parser.parse_args()
    workdir = pathlib.Path(args.workdir)
    out = pathlib.Path(args.out or workdir / "pages-check")
    pages = {
        "ranking": workdir / "ranking.html",
        "evaluation": workdir / "run" / evaluate.EVAL_DIR / evaluate.REPORT_PAGE,
        "build": pathlib.Path(tfds.builder("ava/sample", data_dir=str(workdir / "tfds")).data_path) / transforms.REPORT_PAGE,
    }
    missing = [str(path) for path in pages.values() if not path.is_file()]
    if missing:
        print(f"no page at {', '.join(missing)}: run `make demo` first (WORKDIR={workdir})", file=sys.stderr)
        return 1
    if not os.path.exists(CHROMIUM):
        print(f"no Chromium at {CHROMIUM}: install Debian's with `apt-get install chromium`", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        pages[f"ranking of {SIZE_PHOTOS}"] = _ranking_of(SIZE_PHOTOS, workdir, pathlib.Path(scratch))
        problems = _check_in_browser(pages, out)
        problems += _check_size(pages[f"ranking of {SIZE_PHOTOS}"])
    print(f"screenshots: {out}")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _ranking_of(count: int, workdir: pathlib.Path, scratch: pathlib.Path) -> pathlib.Path:
    """A ranking page of `count` photos: the sample's photos, symbolic links under new names."""
    originals = sorted(p for p in pathlib.Path(ava_dataset_builder.sample_images_dir(str(workdir / "tfds"), "sample")).iterdir())
    photos = scratch / "photos"
    photos.mkdir()
    for index in range(count):
        original = originals[index % len(originals)].resolve()
        (photos / f"{index:05d}-{original.name}").symlink_to(original)
    page = scratch / "ranking.html"
    subprocess.run(
        [sys.executable, "-m", "serving.predict", f"--model={workdir / 'export'}", f"--html={page}", f"--output={scratch / 'r.csv'}", str(photos)],
        check=False, capture_output=True, text=True,
    )
    return page


def _check_size(page: pathlib.Path) -> list[str]:
    folder = pathlib.Path(files_dir(str(page)))
    thumbnails = sum(f.stat().st_size for f in folder.iterdir())
    total = (page.stat().st_size + thumbnails) / 1e6
    count = len(list(folder.iterdir()))
    print(f"ranking of {count} photos: page {page.stat().st_size / 1e6:.2f} MB, thumbnails {thumbnails / 1e6:.2f} MB "
          f"({thumbnails / max(count, 1) / 1e3:.1f} kB each), {total:.2f} MB in all")
    return [f"the ranking of {count} photos weighs {total:.2f} MB, over {PAGE_MEGABYTES} MB"] if total > PAGE_MEGABYTES else []


def _check_in_browser(pages: dict[str, pathlib.Path], out: pathlib.Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, path in pages.items():
            for width_name, width in WIDTHS.items():
                page = browser.new_page(viewport={"width": width, "height": 900})
                errors = []
                page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                page.on("console", lambda message, errors=errors: errors.append(message.text) if message.type == "error" else None)
                page.on("requestfailed", lambda request, errors=errors: errors.append(f"could not load {request.url}"))
                page.goto(path.resolve().as_uri(), wait_until="load")
                seconds = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                page.screenshot(path=str(out / f"{name.replace(' ', '-')}-{width_name}.png"), full_page=name != f"ranking of {SIZE_PHOTOS}")
                page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
                page.wait_for_load_state("networkidle")
                _scroll_through(page)
                broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
                if name.startswith("ranking") and width_name == "desktop":
                    problems += [f"{name}: {p}" for p in _use_the_controls(page)]
                print(f"{name:<18} {width_name:<8} loaded in {seconds:.2f} s, {page.evaluate('document.images.length')} images, "
                      f"{len(broken)} broken, {len(errors)} errors, {max(overflow, 0)} px wider than the window")
                problems += [f"{name} ({width_name}): {e}" for e in errors]
                problems += [f"{name} ({width_name}): image not shown: {src}" for src in broken[:5]]
                if seconds > LOAD_SECONDS:
                    problems.append(f"{name} ({width_name}) took {seconds:.2f} s to load, over {LOAD_SECONDS} s")
                if overflow > 0:
                    problems.append(f"{name} ({width_name}) is {overflow} px wider than the window")
                page.close()
        browser.close()
    return problems


def _scroll_through(page) -> None:
    """Lazy images load once near the window: scroll the whole page a screen at a time."""
    height = page.evaluate("document.body.scrollHeight")
    for top in range(0, height, 800):
        page.evaluate(f"window.scrollTo(0, {top})")
        page.wait_for_timeout(20)
    page.wait_for_load_state("networkidle")


def _use_the_controls(page) -> list[str]:
    """Sorts and filters as a person would; returns what did not behave."""
    problems = []
    means = lambda: page.evaluate("Array.from(document.querySelectorAll('#photos > li:not([hidden])')).map(c => parseFloat(c.dataset.mean))")
    names = lambda: page.evaluate("Array.from(document.querySelectorAll('#photos > li:not([hidden])')).map(c => c.dataset.name)")
    page.select_option("#sort", "mean-asc")
    if means() != sorted(means()):
        problems.append("'worst score first' does not sort by rising score")
    page.select_option("#sort", "name-asc")
    if names() != sorted(names(), key=str.casefold) and names() != sorted(names()):
        problems.append("'name, A to Z' does not sort by name")
    everything = means()
    middle = sorted(everything)[len(everything) // 2]
    page.fill("#low", f"{middle:.2f}")
    shown = means()
    if not shown or min(shown) < float(f"{middle:.2f}") or int(page.inner_text("#shown")) != len(shown):
        problems.append(f"the filter from {middle:.2f} shows {len(shown)} photos, the lowest {min(shown, default=None)}")
    page.fill("#low", "")
    if len(means()) != len(everything):
        problems.append("clearing the filter does not show every photo again")
    return problems


if __name__ == "__main__":
    sys.exit(main())
