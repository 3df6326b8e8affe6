"""The standalone HTML report renders every chart in Chromium (offline: plotly is inlined)."""

import pytest

from eval_studio.analysis.plots import FIGURE_IDS
from eval_studio.analysis.report import write_report
from tests.synthetic import synthetic_battles
from tests.browser import SCREENSHOTS, chromium_page

pytestmark = pytest.mark.browser


def test_report_renders_every_chart(tmp_path):
    strengths = {"bactrian-x-zh": 1100, "bactrian-x-multi": 1060, "gemma-3-270m": 1000, "gpt-3.5": 1150}
    df = synthetic_battles(strengths, 1500, seed=3, judge_share=0.4)
    path = write_report(df, tmp_path / "report.html")
    errors = []
    with chromium_page(1280, 2400) as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {len(FIGURE_IDS)}", timeout=60_000)
        for name in FIGURE_IDS:
            # a rendered plotly chart has an SVG main layer inside its div
            assert page.locator(f"#fig-{name} .main-svg").count() >= 1, name
        assert page.locator("#ratings-table tbody tr").count() == len(strengths)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=False)
    assert not errors, errors
