"""App tier: the gate page's HTTP API on a real Gradio server at 127.0.0.1 (no mocks)."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from app_helpers import page_call, synthetic_context, synthetic_snapshot

from hill_core.config import Config, GateConfig
from hill_core.edits import make_edits, read_edits, write_snapshot
from hill_core.teacher import teacher_from_edits
from interaction_app.layout import Readout
from interaction_app.page_state import snapshot_note
from interaction_app.presence import Presence
from interaction_app.recorder import GateClosedError, GateRecorder
from interaction_app.server import GateServerError, launch_gate, serve_snapshot_file

pytestmark = pytest.mark.slow  # each module starts Gradio servers


def call(url: str, api_name: str, *args) -> dict:
    """Call an endpoint over plain HTTP (Gradio's /call protocol); NaN goes out as a JSON NaN."""
    body = json.dumps({"data": list(args)}).encode()
    request = urllib.request.Request(
        f"{url}gradio_api/call/{api_name}", body, {"Content-Type": "application/json"}
    )
    event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=30)
    event, data = None, None
    for line in stream.read().decode().splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            data = json.loads(line.split(":", 1)[1])
            break
    if event == "error":
        return {"error": (data or {}).get("error")}
    return {"result": data[0]}


@pytest.fixture(scope="module")
def open_gate(tmp_path_factory):
    """One gate that only ever sees invalid submissions, shared by the error tests."""
    tmp = tmp_path_factory.mktemp("open_gate")
    snapshot = synthetic_snapshot(300)
    context = synthetic_context(tmp / "edits.parquet")
    decisions = []
    with launch_gate(snapshot, context, decisions.append, GateConfig()) as server:
        yield server, snapshot, context, decisions


def test_snapshot_endpoint_through_gradio_client(open_gate):
    from gradio_client import Client

    server, snapshot, _, _ = open_gate
    got = Client(server.url, verbose=False).predict(api_name="/snapshot")
    assert got["sample_id"] == snapshot["sample_id"].tolist()
    assert got["x"] == snapshot["x"].tolist() and got["class_names"][3] == "3"
    assert got["gate_epoch"] == 4 and got["decided"] is None


@pytest.mark.parametrize(
    ("rows", "decision", "message"),
    [
        ([{"sample_id": 3000, "x": float("nan"), "y": 0.0}], "approve", "must be finite"),
        ([{"sample_id": 3000, "x": "nan", "y": 0.0}], "approve", "must be finite"),
        ([{"sample_id": 3000, "x": None, "y": 0.0}], "approve", "must be a number"),
        ([{"sample_id": 7, "x": 0.0, "y": 0.0}], "approve", "unknown sample id 7"),
        ([{"sample_id": 3003, "x": 0.0, "y": 0.0, "label": 5}], "approve", "snapshot says 1"),
        ([{"sample_id": 3000, "x": 1.0, "y": 0.0}] * 2, "approve", "more than once"),
        ([{"sample_id": 3000, "x": 1.0, "y": 0.0, "moved": "yes"}], "approve", "true or false"),
        ([], "maybe", "not one of approve, skip, stop"),
    ],
)
def test_invalid_submission_is_refused_and_writes_nothing(open_gate, rows, decision, message):
    server, _, context, decisions = open_gate
    out = call(server.url, "submit", rows, decision)
    assert message in (out.get("error") or ""), out
    assert not Path(context.edits_path).exists()
    assert decisions == []


def test_valid_submission_is_recorded_once(tmp_path):
    snapshot = synthetic_snapshot(300)
    context = synthetic_context(tmp_path / "edits.parquet")
    decisions = []
    rows = [
        {"sample_id": 3000, "x": 1.5, "y": -2.0, "moved": True, "label": 0},
        {"sample_id": 3003, "x": 0.25, "y": 0.5},
    ]
    with launch_gate(snapshot, context, decisions.append, GateConfig()) as server:
        first = call(server.url, "submit", rows, "approve")["result"]
        written = Path(context.edits_path).read_bytes()
        again = call(server.url, "submit", rows, "approve")
        skip = call(server.url, "submit", [], "skip")
        status = call(server.url, "snapshot")["result"]["decided"]
    assert "already decided: approve" in again["error"] and "already decided" in skip["error"]
    assert Path(context.edits_path).read_bytes() == written  # the first file stands
    assert [d.decision for d in decisions] == ["approve"] and status == "approve"
    assert first["edits_sha256"] == decisions[0].edits_sha256
    edits, meta = read_edits(context.edits_path, snapshot)
    assert meta.decision == "approve" and meta.config_hash == context.config_hash
    assert edits.loc[0, ["x_after", "y_after"]].tolist() == [1.5, -2.0] and edits.loc[0, "moved"]
    assert edits.loc[1, ["x_after", "y_after"]].tolist() == [0.25, 0.5]
    assert not edits.loc[1, "moved"]
    rest = edits.iloc[2:]
    assert (rest["x_after"] == rest["x_before"]).all() and not rest["moved"].any()


def test_skip_writes_the_unedited_table(tmp_path):
    snapshot = synthetic_snapshot(50)
    context = synthetic_context(tmp_path / "edits.parquet")
    with launch_gate(snapshot, context, lambda d: None, GateConfig()) as server:
        rows = [{"sample_id": 3000, "x": 9.0, "y": 9.0, "moved": True}]
        assert call(server.url, "submit", rows, "skip")["result"]["decision"] == "skip"
    edits, meta = read_edits(context.edits_path, snapshot)
    assert meta.decision == "skip"
    assert (edits["x_after"] == edits["x_before"]).all() and not edits["moved"].any()


def test_concurrent_decisions_record_exactly_one(tmp_path):
    snapshot = synthetic_snapshot(100)
    calls = []
    recorder = GateRecorder(snapshot, synthetic_context(tmp_path / "e.parquet"), calls.append)
    outcomes = []

    def decide(decision):
        try:
            outcomes.append(recorder.record(decision, None, None, None).decision)
        except GateClosedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=decide, args=("skip",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 7 + ["skip"] and len(calls) == 1


def test_all_interfaces_without_auth_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("HILL_GATE_AUTH", raising=False)
    context = synthetic_context(tmp_path / "e.parquet")
    with pytest.raises(GateServerError, match="reachable from other machines") as err:
        launch_gate(synthetic_snapshot(20), context, print, GateConfig(host="0.0.0.0"))
    assert "\n" not in str(err.value)


def test_auth_from_env_protects_the_page(tmp_path, monkeypatch):
    """The page, its script and the script's calls (readout, status, item, opening) all need
    the login."""
    monkeypatch.setenv("HILL_GATE_AUTH", "ana:s3cret")
    context = synthetic_context(tmp_path / "e.parquet")
    with launch_gate(synthetic_snapshot(20), context, print, GateConfig()) as server:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{server.url}config", timeout=60)
        assert err.value.code == 401
        for name, data in (("opening", None), ("readout", {}), ("status", None), ("item", 1)):
            with pytest.raises(urllib.error.HTTPError) as err:
                page_call(server.url, name, data)
            assert err.value.code == 401, name
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{server.url}api/page/script", timeout=60)
        assert err.value.code == 401


def test_bad_auth_file_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv("HILL_GATE_AUTH", raising=False)
    (tmp_path / "auth").write_text("no-colon-here\n")
    gate = GateConfig(auth_file=str(tmp_path / "auth"))
    with pytest.raises(GateServerError, match="expected user:password"):
        launch_gate(synthetic_snapshot(20), synthetic_context(tmp_path / "e"), print, gate)


def test_readout_matches_the_page_rule_and_is_fast():
    snapshot = synthetic_snapshot(10_000)
    readout = Readout(snapshot, 10, synthetic_context(Path("unused")).weights)
    offsets = np.zeros((10, 2))
    offsets[3] = (0.5, -1.0)
    ops = {"offsets": offsets.tolist(), "scales": [1.0] * 10, "moved": [[3003, 9.0, 9.0]]}
    q, moved = readout.positions(ops)
    xy = snapshot[["x", "y"]].to_numpy()
    cls3 = snapshot["label"].to_numpy() == 3
    assert (q[cls3] - xy[cls3] == (0.5, -1.0)).all()
    assert (q[~cls3 & ~moved] == xy[~cls3 & ~moved]).all() and q[1].tolist() == [9.0, 9.0]
    assert readout({})["l_human"] == pytest.approx(0.0, abs=1e-6)  # no edit asks nothing
    assert readout(ops)["l_center"] > 0 and readout(ops)["l_point"] > 0


def readout_cases(snapshot: pd.DataFrame, count: int, seed: int = 0) -> list[dict]:
    """Edit states as the page sends them: shifts, scales, merges, single points, a class all
    moved point by point, and no edit at all."""
    rng = np.random.default_rng(seed)
    ids, labels = snapshot["sample_id"].to_numpy(), snapshot["label"].to_numpy()
    cases = [{}]
    for k in range(count):
        offsets, scales = np.zeros((10, 2)), np.ones(10)
        for c in rng.choice(10, rng.integers(0, 4), replace=False):
            offsets[c] = rng.normal(size=2)
        for c in rng.choice(10, rng.integers(0, 3), replace=False):
            scales[c] = rng.uniform(0.2, 2.5)
        picked = rng.choice(ids, rng.integers(0, 30), replace=False)
        moved = [[int(i), float(rng.normal() * 4), float(rng.normal() * 4)] for i in picked]
        if k % 4 == 0:  # class 4 moved entirely point by point: no shift or scale, only points
            taken = {m[0] for m in moved}
            moved += [[int(i), 0.5, 0.5] for i in ids[labels == 4] if int(i) not in taken]
        if k % 4 == 1:  # a merge: class 2's centre dropped on class 7's
            offsets[2] = [4 * np.cos(2 * np.pi * 0.7) - 4 * np.cos(2 * np.pi * 0.2), 0.0]
        cases.append({"offsets": offsets.tolist(), "scales": scales.tolist(), "moved": moved})
    return cases


def test_cached_readout_equals_the_long_way():
    """Readout caches the gate side and the current layout's class statistics; its numbers
    are hill_core's teacher_from_edits + layout_loss over every point (float32 rounding)."""
    snapshot = synthetic_snapshot(3000)
    readout = Readout(snapshot, 10, synthetic_context(Path("unused")).weights)
    for ops in readout_cases(snapshot, 16):
        fast, slow = readout(ops), readout.reference(ops)
        assert fast.keys() == slow.keys()
        for key in fast:
            assert fast[key] == pytest.approx(slow[key], rel=2e-4, abs=1e-7), (key, ops)
        q, moved = readout.positions(ops)
        edits = make_edits(snapshot, q[:, 0], q[:, 1], moved, "", 0)
        a, b = readout.teacher(q, moved), teacher_from_edits(edits, 10)
        for field in a.__dict__:
            x, y = getattr(a, field), getattr(b, field)
            assert x.dtype == y.dtype and torch.allclose(x.double(), y.double(), atol=1e-6), field


def test_serve_snapshot_file_times_out_into_the_configured_decision(tmp_path, capsys):
    snapshot = synthetic_snapshot(40)
    path = write_snapshot(tmp_path / "snap.parquet", snapshot, gate_epoch=6, run_id="r42")
    cfg = Config().replace(**{"gate.timeout_s": 1, "gate.on_timeout": "stop"})
    serve_snapshot_file(path, cfg, tmp_path / "out")
    edits, meta = read_edits(tmp_path / "out" / "gate_0006.parquet", snapshot)
    assert meta.decision == "stop" and (edits["run_id"] == "r42").all()
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out and "Decision: stop" in out


def test_decision_from_outside_the_page_goes_through_its_lock(tmp_path):
    """A resume through Prefect records the unedited layout, and locks the page against a click."""
    snapshot = synthetic_snapshot(50)
    context = synthetic_context(tmp_path / "edits.parquet")
    decisions = []
    with launch_gate(snapshot, context, decisions.append, GateConfig()) as server:
        outside = server.decide("approve", source="prefect")
        rows = [{"sample_id": 3000, "x": 9.0, "y": 9.0, "moved": True}]
        late = call(server.url, "submit", rows, "approve")
    assert "already decided: approve" in late["error"]
    assert [d.decision for d in decisions] == ["approve"] and outside == decisions[0]
    edits, meta = read_edits(context.edits_path, snapshot)
    assert (meta.decision, meta.source, outside.source) == ("approve", "prefect", "prefect")
    assert (edits["x_after"] == edits["x_before"]).all() and not edits["moved"].any()


def test_presence_counts_live_pages_until_they_lock():
    now = [100.0]  # a clock the test moves: no sleep, no race with a loaded machine
    presence = Presence(live_s=0.3, clock=lambda: now[0])
    for junk in (None, "a", {"page": 3}, {"page": ""}, {"page": "x" * 65}):
        presence.seen(junk)
    assert presence.live() == 0
    presence.seen({"page": "a", "locked": False})
    presence.seen({"page": "b"})
    assert presence.waiting() == 2
    presence.seen({"page": "a", "locked": True})
    presence.seen({"page": "a", "locked": False})  # a later poll does not unlock it
    assert presence.waiting() == 1 and presence.live() == 2
    decided = now[0]
    now[0] += 0.35  # b went quiet: closed, or asleep in a background tab
    assert presence.waiting() == 0 and presence.live() == 0
    assert presence.waiting(since=decided) == 1  # but it was open at the decision
    presence.seen({"page": "c"})  # a page opened after the decision
    assert presence.waiting(since=decided) == 2


def test_close_after_a_decision_waits_for_open_pages_to_lock(tmp_path):
    """The server outlives its decision until each page heard from has shown it."""
    snapshot = synthetic_snapshot(60)
    context = synthetic_context(tmp_path / "edits.parquet")
    server = launch_gate(snapshot, context, lambda d: None, GateConfig())
    try:
        waiting = page_call(server.url, "status", {"page": "tab-a", "locked": False})
        assert waiting == {"decided": False, "message": ""}
        server.decide("stop", source="timeout")
        closing = threading.Thread(target=server.close, kwargs={"grace_s": 20})
        t0 = time.monotonic()
        closing.start()
        time.sleep(1.0)
        assert closing.is_alive()  # tab-a has not locked yet: still serving
        status = page_call(server.url, "status", {"page": "tab-a", "locked": False})
        assert status["decided"] and status["decision"] == "stop"
        assert re.fullmatch(
            r"Recorded stop at \d\d:\d\d:\d\d by the timeout \(gate.timeout_s\): the run stops "
            r"here and is finalised with what it has\. This gate no longer accepts edits\.",
            status["message"],
        ), status["message"]
        assert status["detail"].startswith(f"Wrote {context.edits_path} (sha256 ")
        page_call(server.url, "status", {"page": "tab-a", "locked": True})  # tab-a locked
        closing.join(timeout=60)
        # Closed once tab-a locked, not at the end of the grace period (20 s).
        assert not closing.is_alive() and time.monotonic() - t0 < 20
    finally:
        server.close(grace_s=0)
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url, timeout=2)


def test_close_gives_up_on_a_silent_page_and_skips_the_wait_without_a_decision(tmp_path):
    snapshot = synthetic_snapshot(60)
    context = synthetic_context(tmp_path / "edits.parquet")
    server = launch_gate(snapshot, context, lambda d: None, GateConfig())
    page_call(server.url, "status", {"page": "never-locks"})
    t0 = time.monotonic()
    server.close()  # no decision: at once
    assert time.monotonic() - t0 < 1
    other = launch_gate(snapshot, replace(context, edits_path=tmp_path / "b"), print, GateConfig())
    page_call(other.url, "status", {"page": "never-locks"})
    other.decide("skip", source="prefect")
    t0 = time.monotonic()
    other.close(grace_s=1.0)
    assert 0.95 <= time.monotonic() - t0 < 3  # waited for it, then went


def test_item_endpoint_and_server_function_serve_one_preview(tmp_path):
    snapshot = synthetic_snapshot(40)
    snapshot["item"] = [f"features {i}" for i in range(40)]
    context = synthetic_context(tmp_path / "edits.parquet")
    with launch_gate(snapshot, context, lambda d: None, GateConfig()) as server:
        got = call(server.url, "item", 3003)["result"]
        assert got == {"sample_id": 3003, "item": "features 1"}
        assert call(server.url, "item", 7)["result"]["item"] is None
        assert page_call(server.url, "item", 3006.0)["item"] == "features 2"
        with pytest.raises(urllib.error.HTTPError) as refused:  # an id is a number
            page_call(server.url, "item", "3006")
        assert refused.value.code == 400 and "sample_id" in refused.value.read().decode()
        opening = page_call(server.url, "opening", None)
    assert opening["gate"]["has_items"] is True
    assert "item" not in opening["view"]  # previews come one by one, on hover


def test_snapshot_note_on_the_page(tmp_path):
    context = replace(synthetic_context(tmp_path / "e.parquet"), snapshot_size=500)
    assert snapshot_note(500, context) == ""
    assert snapshot_note(300, context) == (
        "This snapshot holds 300 items, fewer than hill.snapshot_size=500: the training set "
        "is smaller, so all of it is shown."
    )
    assert snapshot_note(300, replace(context, snapshot_size=0)) == ""
    assert snapshot_note(300, context, "from take_snapshot") == "from take_snapshot"
    with launch_gate(synthetic_snapshot(300), context, print, GateConfig()) as server:
        opening = page_call(server.url, "opening", None)
    assert opening["gate"]["note"] == snapshot_note(300, context)
    assert opening["title"] == f"hill gate · {context.run_name} · epoch {context.gate_epoch}"
    assert len(opening["view"]["x"]) == 300 and "hill-ctx" in opening["context_html"]
