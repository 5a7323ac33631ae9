"""End to end: the real Streamlit server driven by Playwright in headless Debian Chromium.

Changes widgets as a user would and checks that the numbers, the chart and the URL follow; uploads good and
bad accelerator files; saves screenshots to a temporary folder. Skips when /usr/bin/chromium or the
playwright package is missing (`scripts/ensure_chromium.sh` installs chromium; `make install` runs it)."""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from planner.dashboard.e2e import CHROMIUM, ROOT, chromium, settle, streamlit_server

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (run scripts/ensure_chromium.sh as root); browser tests skipped",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install -e '.[browser]')")


def metric(page, label_start: str) -> str:
    for m in page.locator('[data-testid="stMetric"]').all():
        if m.locator('[data-testid="stMetricLabel"]').inner_text().strip().startswith(label_start):
            return m.locator('[data-testid="stMetricValue"]').inner_text().strip()
    raise AssertionError(f"no metric labelled {label_start!r}")


def chart_data(page, index: int = 0) -> list:
    return page.evaluate("(i) => { const g = document.querySelectorAll('.js-plotly-plot')[i];"
                         " return g && g.data ? g.data.map(t => [t.name, JSON.stringify(t.x)]) : null; }",
                         index)


def chart_title(page, index: int = 0) -> str:
    return page.evaluate("(i) => { const g = document.querySelectorAll('.js-plotly-plot')[i];"
                         " return g && g.layout && g.layout.title ? String(g.layout.title.text) : ''; }", index)


def alerts(page, kind: str) -> list[str]:
    return [a.inner_text() for a in page.locator(f'[data-testid="stAlertContent{kind}"]').all()]


@pytest.fixture(scope="module")
def app():
    with streamlit_server() as url, chromium() as ctx:
        yield url, ctx


@pytest.fixture(scope="module")
def shots():
    d = Path(tempfile.mkdtemp(prefix="radplan-screenshots-"))
    yield d


def test_roofline_widgets_update_chart_numbers_and_url(app, shots):
    url, ctx = app
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/roofline?gpus=h100-sxm&model=llama-3-8b&precision=bf16&batch=8")
    settle(page)
    page.wait_for_selector(".js-plotly-plot")
    prefill, decode = metric(page, "Prefill"), metric(page, "Decode step")
    before = chart_data(page)
    assert "batch 8" in chart_title(page)
    page.screenshot(path=str(shots / "roofline-before.png"), full_page=True)

    box = page.get_by_role("spinbutton", name="Input tokens (prompt; pipelines add image tokens)", exact=True)
    box.fill("2048")
    t0 = time.perf_counter()
    box.press("Enter")
    page.wait_for_url("**in=2048**", timeout=20_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    elapsed = time.perf_counter() - t0       # about 0.7 s here; the bound only catches gross regressions
    assert elapsed < 5, f"a widget change took {elapsed:.1f} s to re-render"
    settle(page)
    assert metric(page, "Prefill") != prefill                       # prefill grows with the prompt
    assert chart_data(page) != before                                 # the ops moved on the chart

    thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
    thumb.focus()
    thumb.press("ArrowRight")                                         # batch 8 -> 16
    page.wait_for_url("**batch=16**", timeout=20_000)
    settle(page)
    assert "batch 16" in chart_title(page)
    assert metric(page, "Decode step") != decode
    page.screenshot(path=str(shots / "roofline-after.png"), full_page=True)
    assert not errors, errors

    # the address reproduces the view in a fresh tab (a new session)
    shared = page.url
    other = ctx.new_page()
    other.goto(shared)
    settle(other)
    other.wait_for_selector(".js-plotly-plot")
    assert metric(other, "Prefill") == metric(page, "Prefill")
    assert "batch 16" in chart_title(other)
    other.close()
    page.close()


def test_compare_page_in_the_browser(app, shots):
    url, ctx = app
    page = ctx.new_page()
    page.goto(f"{url}/compare?gpus=h100-sxm,l40s,l4&precisions=bf16,fp8&model=llama-3-8b")
    settle(page)
    page.wait_for_selector(".js-plotly-plot")
    cheap = metric(page, "Cheapest per 1,000 studies")
    assert cheap.startswith("$")
    box = page.get_by_role("spinbutton", name="Output tokens", exact=True)
    box.fill("512")
    box.press("Enter")
    page.wait_for_url("**out=512**", timeout=20_000)
    settle(page)
    assert metric(page, "Cheapest per 1,000 studies") != cheap
    page.screenshot(path=str(shots / "compare.png"), full_page=True)
    page.close()


GOOD = (ROOT / "hw_specs" / "l40s.yaml").read_text().replace("id: l40s", "id: my-gpu")


def test_hardware_upload_errors_inline_and_adds_for_the_session(app, shots, tmp_path):
    url, ctx = app
    page = ctx.new_page()
    page.goto(f"{url}/hardware")
    settle(page)
    bad = tmp_path / "my-gpu.yaml"
    bad.write_text(GOOD.replace("tdp_w: 350", "tdp_w: -350"))
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(bad))
    page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=20_000)
    settle(page)
    err = " ".join(alerts(page, "Error"))
    assert "field 'power.tdp_w'" in err and "Traceback" not in page.content()
    page.screenshot(path=str(shots / "hardware-bad-upload.png"), full_page=True)

    good = tmp_path / "upload" / "my-gpu.yaml"
    good.parent.mkdir()
    good.write_text(GOOD)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(good))
    page.wait_for_selector('[data-testid="stAlertContentSuccess"]', timeout=20_000)
    settle(page)
    assert "Added my-gpu" in " ".join(alerts(page, "Success"))
    assert "my-gpu" in page.locator('[data-testid="stSidebar"]').inner_text()

    # in-app navigation keeps the browser session: the uploaded accelerator is usable on another page
    page.locator('[data-testid="stSidebarNav"] a', has_text="Quantization").click()
    page.wait_for_url("**/quantization**")
    settle(page)
    sel = page.locator('[data-testid="stSelectbox"]', has_text="Accelerator").first
    sel.click()
    page.keyboard.type("my-gpu")
    page.keyboard.press("Enter")
    page.wait_for_url("**gpu=my-gpu**", timeout=20_000)
    settle(page)
    assert "my-gpu" in chart_title(page)
    page.screenshot(path=str(shots / "quantization-my-gpu.png"), full_page=True)
    page.close()


def test_plan_page_in_the_browser(app, shots):
    pytest.importorskip("planner.capacity", reason="capacity planning (issue 4) is not in this tree yet")
    url, ctx = app
    page = ctx.new_page()
    page.goto(f"{url}/?preset=ed-cxr-draft-r2gengpt&gpus=l40s,l4&precisions=fp8,w8a8")
    settle(page)
    page.wait_for_selector(".js-plotly-plot")
    tco = metric(page, "TCO per year")
    box = page.get_by_role("spinbutton", name="daily volume", exact=True)
    box.fill("1000")
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_url("**daily_volume=1000**", timeout=60_000)
    settle(page)
    assert metric(page, "TCO per year") != tco
    assert page.locator(".js-plotly-plot").count() == 3
    page.screenshot(path=str(shots / "plan.png"))
    page.close()


def test_plan_page_department_upload(app, shots, tmp_path):
    """A new user uploads a department file (several workloads on one fleet), then a broken one."""
    pytest.importorskip("planner.capacity", reason="capacity planning (issue 4) is not in this tree yet")
    url, ctx = app
    page = ctx.new_page()
    page.goto(f"{url}/?source=department+file&gpus=l40s,l4&precisions=fp8")
    settle(page)
    dept = ROOT / "data" / "departments" / "example-academic-centre.yaml"
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(dept))
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_selector('[data-testid="stMetric"]', timeout=120_000)
    settle(page, timeout_ms=120_000)
    assert "Traceback" not in page.content()
    assert metric(page, "Accelerators")
    page.screenshot(path=str(shots / "plan-department.png"), full_page=True)

    bad = tmp_path / "broken-department.yaml"
    bad.write_text(dept.read_text().replace("annual_exams:", "annual_exams: -5\nx_annual:", 1))
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(bad))
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=60_000)
    settle(page)
    err = " ".join(alerts(page, "Error"))
    assert "Department file not accepted" in err and "Traceback" not in page.content()
    page.close()
