"""App tier, real browser: a gate on a user's own network (examples/tinynet) shows its items,
drawn by the data set's own preview, on hover."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from app_helpers import PLOT_ROOT, module_browser, synthetic_context, wait_ready
from PIL import Image
from user_code import copy_examples

from hill_core.config import GateConfig, load_config
from hill_core.data import load_data
from hill_core.snapshot import take_snapshot
from hill_core.train import init_state, train_segment
from interaction_app.server import launch_gate

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = PLOT_ROOT  # the plot's element, in page JS


@pytest.fixture(scope="module")
def browser():
    yield from module_browser()


@pytest.fixture
def example_snapshot(tmp_path, monkeypatch):
    """The snapshot of the example network after one epoch, and its data set."""
    monkeypatch.chdir(tmp_path)
    copy_examples(tmp_path)
    cfg = load_config(None, [
        "base.device=cpu", "train.epochs=2", "hill.gate_epochs=[1]", "hill.snapshot_size=200",
        "data.name=examples.tinynet.data:digit_splits", "model.name=examples.tinynet.model:build",
        "model.latent=encoder.proj",
    ])  # fmt: skip
    data = load_data(cfg.data, cfg.base.seed)
    state, _ = train_segment(init_state(cfg, data), 1, 1, None)
    return take_snapshot(state), data


def test_hover_on_the_example_network_shows_the_item_its_data_set_previews(
    browser, example_snapshot, tmp_path
):
    snapshot, data = example_snapshot
    context = synthetic_context(tmp_path / "edits.parquet")
    with launch_gate(snapshot, context, lambda d: None, GateConfig()) as server:
        window = browser.new_context(viewport={"width": 1400, "height": 900})
        page = window.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        wait_ready(page)
        i = page.evaluate(
            f"""n => {{
              const h = {ROOT}.hill;
              for (let i = 0; i < n; i++) {{
                const [x, y] = h.toClient(...h.point(i));
                const hit = h.pickAt(x, y);
                if (hit.kind === 'point' && hit.index === i) return i;
              }}
              return -1;
            }}""",
            len(snapshot),
        )
        assert i >= 0
        page.mouse.move(*page.evaluate(f"i => {ROOT}.hill.toClient(...{ROOT}.hill.point(i))", i))
        thumb = page.locator("#hill-plot .hill-tip img.hill-thumb")
        thumb.wait_for()
        assert thumb.get_attribute("src") == snapshot["item"].iloc[i]
        assert f"sample {snapshot['sample_id'].iloc[i]}" in page.evaluate(
            f"() => {ROOT}.hill.tipText()"
        )
        assert errors == []
        window.close()
    # The picture is the example's preview of that item: its digit, ink dark on white.
    shown = Image.open(io.BytesIO(base64.b64decode(thumb_src(snapshot, i))))
    sample = int(snapshot["sample_id"].iloc[i])
    x = data.train_eval.get_x(sample)  # ids are the training set's indices
    expected = np.round((1.0 - x[0].numpy()) * 255).astype(int)
    assert np.abs(np.asarray(shown).astype(int) - expected).max() <= 1


def thumb_src(snapshot, i: int) -> str:
    return snapshot["item"].iloc[i].split(",", 1)[1]
