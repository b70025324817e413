"""Property-based fuzzing of the gate API (hypothesis, derandomized): the service's JSON
decision API, and the page's own Gradio ``/submit`` route that the issue probed.

Every malformed request must get a clear 4xx whose one-line error names the field and says why
(never a 5xx, a traceback or ``{"error": null}``), leave the server up, and write nothing: the
folder's listing and the gate's edits file stay exactly as they were, and no flow run is
resumed. Valid decisions are recorded once: a replay gets 409, and of several sent at the same
moment exactly one wins. Memory stays bounded: oversized bodies are streamed by the client and
refused by the server before it reads them. The last test prints the payloads tried, the
crashes, the writes and the peak memory of this process (client and servers together).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import math
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from app_helpers import synthetic_snapshot
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_gate_hardening import PeakRss, streamed_body
from test_gate_service import running_service, write_gate

from hill_core.edits import DECISIONS
from interaction_app.page_calls import CALLS

pytestmark = pytest.mark.slow  # a web server and several hundred requests

N_POINTS = 300  # the fuzzed gate's snapshot (body cap: 64 KiB + 256 B per point = 139 KiB)
SNAPSHOT = synthetic_snapshot(N_POINTS)  # the same table write_gate stores
IDS = SNAPSHOT["sample_id"].astype(int).tolist()
LABEL = dict(zip(IDS, SNAPSHOT["label"].astype(int).tolist(), strict=True))
FUZZ = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays stable
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
TRIED: collections.Counter[str] = collections.Counter()  # payloads sent, by kind
CRASHES: list[str] = []  # 5xx answers, no answer, or a server that stopped answering
WRITES: list[str] = []  # payloads after which a file was created or changed
MEMORY = PeakRss()  # started by the first fixture; sampled after every payload
MIN_TRIED = 650  # what the whole module must have sent (checked by the last test)
MAX_RSS_GROWTH_MIB = 300  # the page's own start-up included; one unread 20 MB body was ~130
PAGE_EXAMPLES = 150
# What each refusal must name: the field the payload broke (service and page alike).
FIELD = {
    "x_not_a_number": r"\b[xy]\b",  # "x of sample 3000 is ...", "rows[0].x is NaN, ..."
    "x_not_finite": r"\b[xy]\b",
    "bad_sample_id": r"sample_id",
    "unknown_sample_id": r"sample id",
    "duplicate_sample_id": r"sample id",
    "wrong_label": r"label",
    "bad_moved": r"moved",
    "missing_key": r"has no (sample_id|x|y)\b",
    "row_not_an_object": r"row \d+",
    "rows_not_a_list": r"\brows\b",
    "bad_decision": r"decision",
    "no_decision": r"decision",
    "unknown_key": r"unknown key",
    "not_an_object": r"body",
    "token": r"token",
    "gate": r"gate",
    "arity": r"rows, decision",
}
ANY_FIELD = r"\b(body|decision|rows?|sample_id|sample id|key|label|moved|[xy] of sample)\b"


def field_of(kind: str) -> str:
    if kind.startswith("oversized"):
        return r"body"
    return FIELD.get(kind, ANY_FIELD)


def listing(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256: what 'nothing was written' is checked against."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class Service:
    """The module's running service and its open, never-decided gate."""

    def __init__(self, base: str, run_dir: Path, ticket, token: str, resumed: list):
        self.base, self.run_dir, self.ticket, self.token = base, run_dir, ticket, token
        self.resumed = resumed
        self.client = httpx.Client(base_url=base, timeout=60)
        self.decision_path = f"{ticket.page_path()}/api/decision"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fuzz") / "runs"
    ticket, token = write_gate(run_dir, run="fz", n=N_POINTS)
    MEMORY.start()
    resumed = []  # no Prefect here: the service's resume is recorded instead
    with running_service(run_dir, resume=lambda t, d: resumed.append((t.run_name, d))) as base:
        svc = Service(base, run_dir, ticket, token, resumed)
        yield svc
        svc.client.close()


# ---- strategies -----------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)
)  # floats include NaN and ±inf: json.dumps sends them as NaN / Infinity literals
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@st.composite
def valid_row(draw, sid: int) -> dict:
    row = {"sample_id": sid, "x": draw(finite), "y": draw(finite), "moved": draw(st.booleans())}
    if draw(st.booleans()):
        row["label"] = LABEL[sid]
    return row


@st.composite
def valid_payload(draw, min_rows: int = 0) -> dict:
    ids = draw(st.lists(st.sampled_from(IDS), min_size=min_rows, max_size=12, unique=True))
    return {"decision": draw(st.sampled_from(DECISIONS)), "rows": [draw(valid_row(s)) for s in ids]}


not_a_number = st.one_of(
    st.none(),
    st.booleans(),
    st.lists(finite, max_size=2),
    st.dictionaries(st.text(max_size=3), finite, max_size=2),
    st.text(max_size=8).filter(lambda s: not parses_as_float(s)),
)
not_finite = st.sampled_from([math.nan, math.inf, -math.inf, "nan", "inf", "-Infinity", 10**400])
bad_id = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.floats().filter(lambda f: not f.is_integer()),  # 3000.5, NaN, inf
    st.integers(min_value=2**63, max_value=2**200),
    st.lists(st.sampled_from(IDS), min_size=1, max_size=2),
)
unknown_id = st.integers(-(2**63), 2**63 - 1).filter(lambda s: s not in LABEL)
bad_moved = st.one_of(st.none(), st.integers(0, 1), st.text(max_size=5), finite)
ROW_MUTATIONS = (
    "x_not_a_number",
    "x_not_finite",
    "bad_sample_id",
    "unknown_sample_id",
    "duplicate_sample_id",
    "wrong_label",
    "bad_moved",
    "missing_key",
    "row_not_an_object",
)
PAYLOAD_MUTATIONS = (
    "rows_not_a_list",
    "bad_decision",
    "no_decision",
    "unknown_key",
    "not_an_object",
)
MUTATIONS = ROW_MUTATIONS + PAYLOAD_MUTATIONS


@st.composite
def mutated(draw, kind: str) -> tuple[str, dict | list]:
    """A valid payload made invalid in exactly one known way, ``kind``: (kind, payload)."""
    payload = draw(valid_payload(min_rows=1))
    rows = payload["rows"]
    i = draw(st.integers(0, len(rows) - 1))
    if kind == "x_not_a_number":
        rows[i][draw(st.sampled_from(["x", "y"]))] = draw(not_a_number)
    elif kind == "x_not_finite":
        rows[i][draw(st.sampled_from(["x", "y"]))] = draw(not_finite)
    elif kind == "bad_sample_id":
        rows[i]["sample_id"] = draw(bad_id)
    elif kind == "unknown_sample_id":
        rows[i]["sample_id"] = draw(unknown_id)
    elif kind == "duplicate_sample_id":
        rows.insert(draw(st.integers(0, len(rows))), draw(valid_row(rows[i]["sample_id"])))
    elif kind == "wrong_label":
        sid = rows[i]["sample_id"]
        wrong = st.integers(-5, 15).filter(lambda k: k != LABEL[sid])
        rows[i]["label"] = draw(wrong | st.text(max_size=4) | st.booleans() | st.just(1.5))
    elif kind == "bad_moved":
        rows[i]["moved"] = draw(bad_moved)
    elif kind == "missing_key":
        del rows[i][draw(st.sampled_from(["sample_id", "x", "y"]))]
    elif kind == "row_not_an_object":
        rows[i] = draw(json_leaf | st.lists(st.integers(), max_size=3))
    elif kind == "rows_not_a_list":
        payload["rows"] = draw(st.none() | st.text(max_size=5) | st.integers() | st.just({}))
    elif kind == "bad_decision":
        payload["decision"] = draw(json_leaf.filter(lambda d: d not in DECISIONS))
    elif kind == "no_decision":
        del payload["decision"]
    elif kind == "unknown_key":
        payload[draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in payload))] = 1
    else:  # not_an_object
        return kind, [payload]
    return kind, payload


def plausibly_valid(payload) -> bool:
    return isinstance(payload, dict) and payload.get("decision") in DECISIONS


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    valid_payload()
    .map(lambda p: json.dumps(p).encode())
    .flatmap(
        lambda b: st.integers(0, len(b) - 1).map(lambda k: b[:k])  # cut short
    ),
    st.integers(2_000, 60_000).map(nested),  # deeper than Python's recursion limit
    st.sampled_from(
        [
            b"",
            b'{"decision": "approve", "rows": [{"sample_id": 3000, "x": NaN, "y": 0}]}',
            b'{"decision": "approve", "rows": [{"sample_id": 3000, "x": Infinity, "y": 0}]}',
            b'{"decision": "skip", "rows": [], "decision": -Infinity}',
            b'{"decision": "\xff\xfe"}',
            b'{"decision": "approve", "rows": [{"sample_id": 1'
            + b"0" * 5000
            + b', "x": 0, "y": 0}]}',
        ]
    ),
)
ROW_TEXT = '{"sample_id": 3000, "x": 1.0, "y": 1.0, "moved": false}'  # 56 bytes


@st.composite
def request_case(draw) -> dict:
    """One malformed request: how it is sent, what the service must answer."""
    others = ["random_json", "raw", "oversized", "token", "gate"]
    # Each mutation is its own category; the other kinds are weighted 3 to cover as much.
    category = draw(st.sampled_from([*MUTATIONS, *others * 3]))
    case = {"category": category, "token": "RIGHT", "path": "RIGHT", "expect": {400, 422}}
    if category in MUTATIONS:
        kind, payload = draw(mutated(category))
        case.update(kind=kind, json=payload)
        case["expect"] = {400} if kind in ("unknown_key", "not_an_object") else {400, 422}
    elif category == "random_json":
        payload = draw(json_value.filter(lambda p: not plausibly_valid(p)))
        case.update(kind="random_json", json=payload)
    elif category == "raw":
        case.update(kind="raw", content=draw(raw_bodies), expect={400, 422})
    elif category == "oversized":  # 2,600 rows are over the cap; the body is built in send()
        chunked = draw(st.booleans())  # no Content-Length: the cap applies while streaming
        case.update(kind=f"oversized_{'chunked' if chunked else 'declared'}", expect={413})
        case.update(rows=draw(st.integers(2_600, 60_000)), chunked=chunked)
    elif category == "token":
        token = draw(
            st.sampled_from([None, "", "WRONG_CASE", "SHORT", "LONG", "OTHER"])
            | st.text(max_size=40)
        )
        case.update(kind="token", json=draw(valid_payload()), token=token, expect={403})
        case["as_cookie"] = draw(st.booleans())
    else:  # no such gate (or an alias of this one), with this gate's token, a valid payload
        path = draw(st.sampled_from(["5", "04", "+4", "4.0", "4\u0664", " 4", "four"]))
        case.update(kind="gate", json=draw(valid_payload()), expect={404})
        case["path"] = draw(st.sampled_from([f"/fz/gate/{path}", "/zz/gate/4"])) + "/api/decision"
    return case


MILLION_ROWS = {  # always tried, besides the drawn cases: 10^6 rows, 56 MB
    "category": "oversized",
    "kind": "oversized_million",
    "token": "RIGHT",
    "path": "RIGHT",
    "expect": {413},
    "rows": 1_000_000,
    "chunked": False,
}


ENVELOPE = (b'{"decision": "approve", "rows": [', b"]}")  # around the streamed rows


# ---- properties -----------------------------------------------------------------------------


def send(svc: Service, case: dict) -> httpx.Response:
    token = {
        "RIGHT": svc.token,
        "WRONG_CASE": svc.token.swapcase(),
        "SHORT": svc.token[:-1],
        "LONG": svc.token + "A",
        "OTHER": "x" * len(svc.token),
    }.get(case["token"], case["token"])
    path = svc.decision_path if case["path"] == "RIGHT" else case["path"]
    params, headers = {}, {"content-type": "application/json"}
    if token is not None and case.get("as_cookie"):  # quoted: a header holds no control chars
        headers["cookie"] = f"hill_gate_token={quote(token, safe='')}"
    elif token is not None:
        params["token"] = token
    if "json" in case:
        content = json.dumps(case["json"]).encode()  # allow_nan: NaN and Infinity go out as is
    elif "rows" in case:  # streamed: the client never holds the body (memory is the server's)
        length, content = streamed_body(len(ROW_TEXT) * case["rows"], *ENVELOPE)
        content = content()
        if not case["chunked"]:
            headers["content-length"] = str(length)
    else:
        content = case["content"]
    svc.client.cookies.clear()  # a valid request's cookie must not vouch for the next one
    return svc.client.post(path, params=params, content=content, headers=headers)


def assert_clear_refusal(response: httpx.Response, expect: set[int], field: str) -> None:
    """A 4xx in ``expect`` whose one-line JSON error names ``field`` (a regex) and says why."""
    assert response.status_code in expect, (response.status_code, response.text[:300])
    text = response.text
    assert "Traceback" not in text and "\n" not in text.strip(), text[:300]
    error = response.json()["error"]
    assert isinstance(error, str) and 0 < len(error) <= 300, error
    assert re.search(field, error), (field, error)


def check_aftermath(kind: str, answers: bool, before: dict, after: dict, status: int) -> None:
    """Count what went wrong (for the closing note) before asserting it did not."""
    if status >= 500 or not answers:
        CRASHES.append(f"{kind}: {status}")
    if after != before:
        WRITES.append(kind)
    MEMORY.sample()
    assert answers and status < 500, (kind, status)
    assert after == before, kind  # no edits file, no temporary, nothing changed


@FUZZ
@example(case=MILLION_ROWS)
@given(case=request_case())
def test_malformed_requests_are_refused_in_one_line_and_write_nothing(service, case):
    before = listing(service.run_dir)
    try:
        response = send(service, case)
    except httpx.HTTPError as err:  # no answer at all
        CRASHES.append(f"{case['kind']}: {type(err).__name__}")
        raise
    TRIED[case["kind"]] += 1
    answers = service.client.get("/healthz").text == "ok"  # still serving
    after = listing(service.run_dir)
    check_aftermath(case["kind"], answers, before, after, response.status_code)
    assert_clear_refusal(response, case["expect"], field_of(case["kind"]))
    assert not service.ticket.edits_path.exists()
    assert [run for run, _ in service.resumed if run == "fz"] == []  # no flow run resumed


@pytest.fixture(scope="module")
def decided(service):
    """A second gate, decided once through the API: (decision path, token, its answer)."""
    ticket, token = write_gate(service.run_dir, run="replay", n=N_POINTS)
    path = f"{ticket.page_path()}/api/decision"
    rows = [{"sample_id": IDS[0], "x": 1.0, "y": 2.0, "moved": True}]
    body = {"decision": "approve", "rows": rows}
    first = service.client.post(path, params={"token": token}, json=body)
    TRIED["replay_first"] += 1
    assert first.status_code == 200, first.text
    assert first.json()["source"] == "page" and first.json()["decision"] == "approve"
    return path, token, first.json()


@settings(FUZZ, max_examples=150)
@given(payload=valid_payload(), as_cookie=st.booleans())
def test_replays_get_409_and_the_first_decision_stands(service, decided, payload, as_cookie):
    path, token, first = decided
    before = listing(service.run_dir)
    service.client.cookies.clear()
    if as_cookie:
        headers = {"cookie": f"hill_gate_token={token}"}
        again = service.client.post(path, json=payload, headers=headers)
    else:
        again = service.client.post(path, params={"token": token}, json=payload)
    TRIED["replay"] += 1
    MEMORY.sample()
    assert_clear_refusal(again, {409}, r"decided")
    assert "already decided: approve" in again.json()["error"]
    assert listing(service.run_dir) == before  # the first decision's file is unchanged
    recorded = hashlib.sha256(Path(first["edits_path"]).read_bytes()).hexdigest()
    assert recorded == first["edits_sha256"]


def race(service: Service, path: str, token: str, n: int = 8) -> list[httpx.Response]:
    """``n`` valid decisions for one gate, released at the same moment from ``n`` threads."""
    start, responses = threading.Barrier(n), []

    def decide(k: int) -> None:
        body = {"decision": DECISIONS[k % 3], "rows": [{"sample_id": IDS[k], "x": k, "y": 0}]}
        with httpx.Client(base_url=service.base, timeout=60) as client:
            start.wait()
            responses.append(client.post(path, params={"token": token}, json=body))

    threads = [threading.Thread(target=decide, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_concurrent_decisions_record_exactly_one(service):
    for round_ in range(3):
        ticket, token = write_gate(service.run_dir, run=f"race{round_}", n=N_POINTS)
        page = ticket.page_path()
        assert service.client.get(f"{page}/api/snapshot", params={"token": token}).is_success
        responses = race(service, f"{page}/api/decision", token)
        TRIED["concurrent"] += len(responses)
        assert sorted(r.status_code for r in responses) == [200] + [409] * 7
        for refused in (r for r in responses if r.status_code != 200):
            assert_clear_refusal(refused, {409}, r"decided")
        assert ticket.edits_path.exists()
    runs = [run for run, _ in service.resumed]
    assert sorted(r for r in runs if r.startswith("race")) == ["race0", "race1", "race2"]


# ---- the page's own Gradio /submit route, in-process (as `hill run` serves it) -----------------

PAGE_MUTATIONS = (*ROW_MUTATIONS, "rows_not_a_list", "bad_decision")  # decision is positional
PAGE_ENVELOPES = [b"", b"not json", b"{}", b'{"data": 5}', b'{"data": {"rows": []}}', b"[1]"]


class Page:
    """The module's in-process gate page (launch_gate) and its folder, never decided."""

    def __init__(self, url: str, folder: Path, decided: list):
        self.url, self.folder, self.decided = url, folder, decided
        self.client = httpx.Client(base_url=url, timeout=60)


@pytest.fixture(scope="module")
def page(service, tmp_path_factory):  # after the service: MEMORY has started
    from app_helpers import synthetic_context

    from hill_core.config import GateConfig
    from interaction_app.server import launch_gate

    folder = tmp_path_factory.mktemp("page")
    context = synthetic_context(folder / "edits" / "gate_0004.parquet")
    decided = []
    with launch_gate(SNAPSHOT, context, decided.append, GateConfig()) as server:
        gate_page = Page(server.url, folder, decided)
        yield gate_page
        gate_page.client.close()


@st.composite
def page_case(draw) -> dict:
    """One malformed call of the page's ``submit(rows, decision)``: its kind and how it is sent."""
    others = ["random_rows", "arity", "envelope", "big"]
    category = draw(st.sampled_from([*PAGE_MUTATIONS, *others * 3]))  # weighted as above
    if category in PAGE_MUTATIONS:
        kind, payload = draw(mutated(category))
        return {"kind": kind, "data": [payload["rows"], payload["decision"]]}
    if category == "random_rows":  # anything but a list of objects (those are mutated above)
        rows = draw(
            json_value.filter(
                lambda v: not isinstance(v, list) or not all(isinstance(r, dict) for r in v)
            )
        )
        return {"kind": "random_rows", "data": [rows, draw(st.sampled_from(DECISIONS))]}
    if category == "arity":  # Gradio's own check: it used to answer {"error": null}
        rows = draw(valid_payload())["rows"]
        return {"kind": "arity", "data": draw(st.sampled_from([[], [rows]]))}
    if category == "envelope":  # FastAPI's check of Gradio's body: 422 with the field's path
        return {"kind": "envelope", "content": draw(st.sampled_from(PAGE_ENVELOPES))}
    return {"kind": "oversized", "rows": draw(st.integers(2_600, 400_000))}


def call_page(gate_page: Page, case: dict) -> tuple[int, str | None]:
    """POST /gradio_api/call/submit, then read its event stream: (status, the error's text)."""
    client, headers = gate_page.client, {"content-type": "application/json"}
    if "rows" in case:
        length, chunks = streamed_body(len(ROW_TEXT) * case["rows"])
        headers["content-length"] = str(length)
        response = client.post("gradio_api/call/submit", content=chunks(), headers=headers)
    else:
        content = case.get("content")
        if content is None:
            content = json.dumps({"data": case["data"]}).encode()  # NaN goes out as is
        response = client.post("gradio_api/call/submit", content=content, headers=headers)
    text = response.text
    assert "Traceback" not in text, text[:300]
    if response.status_code != 200:
        body = response.json()
        if "detail" in body:  # FastAPI: [{"loc": ["body", "data"], "msg": ...}]
            return response.status_code, "; ".join(
                f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in body["detail"]
            )
        return response.status_code, body.get("error")
    stream = client.get(f"gradio_api/call/submit/{response.json()['event_id']}").text
    event = re.search(r"^event: (\w+)\ndata: (.*)$", stream, re.M)
    assert event and event[1] == "error", stream[:300]  # nothing is ever accepted here
    return 200, json.loads(event[2])["error"]


@settings(FUZZ, max_examples=PAGE_EXAMPLES)
@example(case={"kind": "arity", "data": []})
@example(case={"kind": "arity", "data": [[]]})
@example(case={"kind": "rows_not_a_list", "data": [None, "approve"]})  # was taken as []
@given(case=page_case())
def test_page_submit_refusals_name_the_field(page, case):
    before = listing(page.folder)
    status, error = call_page(page, case)
    TRIED[f"page_{case['kind']}"] += 1
    answers = page.client.get("config").status_code == 200
    check_aftermath(f"page_{case['kind']}", answers, before, listing(page.folder), status)
    field = FIELD.get(case["kind"], ANY_FIELD)
    if case["kind"] == "envelope":
        field = r"\bbody\b"
    elif case["kind"] == "oversized":
        assert status == 413, status
        field = r"body"
    assert isinstance(error, str) and error.strip() and "\n" not in error.strip(), error
    assert re.search(field, error), (case["kind"], error)
    assert page.decided == []


# ---- the page's calls (readout, status, item) and Gradio's server-function route ------------

SERVER_FN_EXAMPLES = 120
COMPONENT_SERVER = "gradio_api/component_server"
not_an_object = json_value.filter(lambda v: v is not None and not isinstance(v, dict))
not_whole = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.floats().filter(lambda f: not f.is_integer()),  # 3000.5, NaN, ±inf
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
field_key = st.text(min_size=1, max_size=8)


@st.composite
def readout_case(draw) -> tuple[object, str]:
    """An edit state the readout must refuse, and the field its refusal must name."""
    n = len(set(LABEL.values()))
    junk = draw(not_a_number | not_finite)  # a coordinate that is no finite number
    bad = draw(not_whole)  # a sample id that is no whole number
    kind = draw(st.sampled_from(["type", "key", "moved", "offsets", "scales", "labels", "huge"]))
    if kind == "type":
        return draw(not_an_object), r"\bops must be an object"
    if kind == "key":
        key = draw(field_key.filter(lambda k: k not in ("offsets", "scales", "moved", "labels")))
        return {key: 1}, r"\bops\..* is not a field"
    if kind == "moved":
        row = draw(st.sampled_from([[IDS[0], junk, 0.0], [bad, 0.0, 0.0], [IDS[0], 0.0]]))
        return {"moved": [row]}, r"\bops\.moved\[0\]"
    if kind == "offsets":
        pairs = [[0.0, 0.0]] * draw(st.integers(0, 2 * n).filter(lambda k: k != n))
        return {"offsets": pairs if pairs else [[junk, 0.0]] * n}, r"\bops\.offsets\b"
    if kind == "scales":
        return {"scales": [junk] * n}, r"\bops\.scales\[0\]"
    if kind == "labels":
        row = draw(st.sampled_from([[IDS[0], n, False], [IDS[0], 0, junk], [bad, 0, False]]))
        return {"labels": [row]}, r"\bops\.labels\[0\]"
    # finite, past float32 (3.4e38) once combined; 1e38 was here, and a scale of 1e38 keeps
    # a centre near the origin inside float32, which the teacher takes too (answered 200)
    big = draw(st.sampled_from([1e39, 1e200, 1.7e308]))
    return {"offsets": [[big, -big]] * n, "scales": [big] * n}, r"\bops\b"


@st.composite
def status_case(draw) -> tuple[object, str]:
    """A status poll no page sends, and the field its refusal must name."""
    kind = draw(st.sampled_from(["type", "key", "page", "locked"]))
    if kind == "type":
        return draw(not_an_object), r"\binfo must be an object"
    if kind == "key":
        key = draw(field_key.filter(lambda k: k not in ("page", "locked")))
        return {"page": "tab", key: 1}, r"\binfo\..* is not a field"
    if kind == "page":
        page_id = draw(
            not_whole.filter(lambda v: not isinstance(v, str)) | st.just("") | st.just("p" * 65)
        )
        return {"page": page_id, "locked": False}, r"\binfo\.page\b"
    locked = draw(not_whole.filter(lambda v: not isinstance(v, bool)) | st.integers(0, 1))
    return {"page": "tab", "locked": locked}, r"\binfo\.locked\b"


@st.composite
def envelope_case(draw) -> tuple[dict | bytes, int, str]:
    """A call of Gradio's server-function route that names no server function: (body, status,
    field). An unknown component_id answered 500 (Gradio's KeyError)."""
    kind = draw(st.sampled_from(["component", "component_type", "fn", "fn_type", "missing",
                                 "session", "raw"]))  # fmt: skip
    call = {"session_hash": "fuzz", "component_id": "PLOT", "fn_name": "readout", "data": None}
    if kind == "component":
        call["component_id"] = draw(
            st.integers(-(2**70), 2**70).filter(lambda i: i > 10**4 or i < 0)
        )
        return call, 404, r"\bcomponent_id\b"
    if kind == "component_type":
        call["component_id"] = draw(not_whole)
        return call, 400, r"\bcomponent_id\b"
    if kind == "fn":
        call["fn_name"] = draw(
            st.text(max_size=12).filter(lambda f: f not in ("readout", "status", "item"))
        )
        return call, 404, r"\bfn_name\b"
    if kind == "fn_type":
        call["fn_name"] = draw(not_whole.filter(lambda v: not isinstance(v, str)))
        return call, 400, r"\bfn_name\b"
    if kind == "missing":
        del call[draw(st.sampled_from(sorted(call)))]
        return call, 400, r"\bbody has no (session_hash|component_id|fn_name|data)\b"
    if kind == "session":
        call["session_hash"] = draw(not_whole.filter(lambda v: not isinstance(v, str)))
        return call, 400, r"\bsession_hash\b"
    raw = draw(st.sampled_from([b"", b"{", b"[1]", b"null", b'"x"', nested(5000), b"\xff\xfe"]))
    return raw, 400, r"\bbody\b"


@st.composite
def call_envelope_case(draw) -> tuple[str, bytes, int, str]:
    """A page call that names no call or sends no JSON: (name, body, status, field)."""
    if draw(st.booleans()):
        name = draw(st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12))
        return name if name not in CALLS else name + "x", b"null", 404, r"is not a call"
    raw = draw(st.sampled_from([b"{", b"[1", b"NaNx", nested(5000), b"\xff\xfe", b'{"a":']))
    return draw(st.sampled_from(CALLS[1:])), raw, 400, r"\bbody\b"


@st.composite
def server_fn_case(draw) -> dict:
    """One malformed call of the page's calls (``api/page/<name>``) or of Gradio's
    server-function route, on the in-process page or the service's page."""
    where = draw(st.sampled_from(["page", "service"]))
    kind = draw(st.sampled_from(["readout", "status", "item", "call", "envelope", "envelope"]))
    if kind == "readout":
        data, field = draw(readout_case())
        case = {"fn": "readout", "data": data, "status": 400, "field": field}
    elif kind == "status":
        data, field = draw(status_case())
        case = {"fn": "status", "data": data, "status": 400, "field": field}
    elif kind == "item":
        bad = draw(not_whole | st.integers(2**63, 10**30))  # past int64: it answered 500
        case = {"fn": "item", "data": bad, "status": 400, "field": r"\bsample_id\b"}
    elif kind == "call":
        name, body, status, field = draw(call_envelope_case())
        case = {"fn": name, "raw": body, "status": status, "field": field}
    else:
        body, status, field = draw(envelope_case())
        case = {"fn": "envelope", "body": body, "status": status, "field": field}
    return {**case, "where": where, "kind": f"fn_{kind}"}


def plot_id(client: httpx.Client, prefix: str, params: dict) -> int:
    config = client.get(f"{prefix}config", params=params).json()
    return next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "hill-plot")


@pytest.fixture(scope="module")
def plot_ids(service, page) -> dict:
    """The plot's component id on the in-process page and on the service's page of gate fz."""
    on_service = f"{service.ticket.page_path()}/"
    return {
        "page": plot_id(page.client, "", {}),
        "service": plot_id(service.client, on_service, {"token": service.token}),
    }


def call_server_fn(service: Service, gate_page: Page, ids: dict, case: dict) -> httpx.Response:
    """POST the case's call as the page's script does (JSON: NaN and Infinity go out as is):
    to ``api/page/<fn>``, or an envelope case to Gradio's server-function route."""
    if case["fn"] != "envelope":
        raw = case.get("raw")
        body = json.dumps(case["data"]).encode() if raw is None else raw
        return post_to_page(service, gate_page, case["where"], f"api/page/{case['fn']}", body)
    body = case.get("body")
    if body is None:
        body = {"session_hash": "fuzz", "component_id": "PLOT", "fn_name": case["fn"],
                "data": case["data"]}  # fmt: skip
    if isinstance(body, dict):
        if body.get("component_id") == "PLOT":
            body = {**body, "component_id": ids[case["where"]]}
        body = json.dumps(body).encode()
    return post_to_page(service, gate_page, case["where"], COMPONENT_SERVER, body)


def post_to_page(service: Service, gate_page: Page, where: str, path: str, body: bytes):
    """POST JSON ``body`` to ``path`` under the in-process page or the service's gate fz."""
    headers = {"content-type": "application/json"}
    if where == "page":
        return gate_page.client.post(path, content=body, headers=headers)
    service.client.cookies.clear()
    path = f"{service.ticket.page_path()}/{path}"
    return service.client.post(path, params={"token": service.token}, content=body, headers=headers)


def error_line(response: httpx.Response) -> str:
    """The one-line error of a refusal: FastAPI's ``detail`` or the guards' ``error``."""
    text = response.text
    assert "Traceback" not in text and "\n" not in text.strip(), text[:300]
    body = response.json()
    error = body.get("detail", body.get("error")) if isinstance(body, dict) else None
    assert isinstance(error, str) and 0 < len(error) <= 300, text[:300]
    return error


@settings(FUZZ, max_examples=SERVER_FN_EXAMPLES)
@example(case={"fn": "envelope", "where": "page", "kind": "fn_envelope", "status": 404,
               "field": r"\bcomponent_id\b",
               "body": {"session_hash": "x", "component_id": 99999, "fn_name": "readout",
                        "data": None}})  # fmt: skip
@example(case={"fn": "readout", "where": "page", "kind": "fn_readout", "status": 400,
               "field": r"\bops\b", "data": {"moved": [[IDS[0], 1e39, 0.0]]}})  # fmt: skip
@given(case=server_fn_case())
def test_server_function_refusals_name_the_field(service, page, plot_ids, case):
    """Readout, status and item refuse what the page never sends with 400 naming the field,
    and the route itself refuses an unknown component or function (it answered 500)."""
    folders = (service.run_dir, page.folder)
    before = [listing(f) for f in folders]
    response = call_server_fn(service, page, plot_ids, case)
    TRIED[case["kind"]] += 1
    answers = page.client.get("config").status_code == 200
    answers = answers and service.client.get("/healthz").text == "ok"
    after = [listing(f) for f in folders]
    check_aftermath(case["kind"], answers, before, after, response.status_code)
    assert response.status_code == case["status"], (case, response.text[:300])
    error = error_line(response)
    assert re.search(case["field"], error), (case["field"], error)
    assert page.decided == [] and not service.ticket.edits_path.exists()


def test_server_functions_answer_well_formed_calls(service, page, plot_ids):
    """The other side of the refusals: what the page sends is answered, unknown ids included
    (an item the snapshot lacks has no preview; that is no error)."""
    for where in ("page", "service"):
        calls = {
            "readout": {"moved": [[IDS[0], 0.5, -0.5]], "scales": [1.0] * 10},
            "status": {"page": "tab-fuzz", "locked": False},
            "item": IDS[0],
        }
        for fn, data in calls.items():
            case = {"fn": fn, "data": data, "where": where}
            response = call_server_fn(service, page, plot_ids, case)
            assert response.status_code == 200, (where, fn, response.text[:300])
        unknown = {"fn": "item", "data": 2**62, "where": where}
        assert call_server_fn(service, page, plot_ids, unknown).json()["item"] is None
        TRIED["fn_valid"] += 4


# ---- the service's own routes: odd paths, tokens and headers --------------------------------

ROUTE_EXAMPLES = 150
odd_run = st.one_of(
    st.sampled_from(["fz", "zz", "..", ".", "%2e%2e", "fz%2Fgate", "f%00z", "%ff", "a b", "ü"]),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
)
odd_epoch = st.one_of(
    st.sampled_from(["4", "04", "+4", "-4", "4.0", "4e0", "0x4", "%34", "4\u0664", "", "four"]),
    st.integers(-(10**30), 10**30).map(str),
    st.text(max_size=6),
)
odd_tail = st.sampled_from(["", "/", "/api/snapshot", "/api/decision", "/api/gates", "/config",
                            f"/{COMPONENT_SERVER}", "/gradio_api/info", "/x"])  # fmt: skip
odd_token = st.one_of(st.none(), st.sampled_from(["", "RIGHT", "WRONG_CASE"]), st.text(max_size=30))
odd_header = st.sampled_from([
    {}, {"cookie": "hill_gate_token=\"unterminated"}, {"cookie": "=;=;;"},
    {"authorization": "Basic !!!"}, {"authorization": "Basic " + "QQ" * 5},
    {"authorization": "Bearer x"}, {"host": "evil.example"},
    {"host": ""}, {"x-forwarded-for": "1.2.3.4, junk"},
])  # fmt: skip


@st.composite
def route_case(draw) -> dict:
    """A request of the service's own routes or a gate's path, made odd in its path, token or
    headers."""
    kind = draw(st.sampled_from(["gate_path", "service_path"]))
    if kind == "gate_path":
        run, epoch = draw(odd_run), draw(odd_epoch)
        path = f"/{quote(run, safe='%')}/gate/{quote(epoch, safe='%+')}{draw(odd_tail)}"
    else:
        path = draw(st.sampled_from(["/", "/healthz", "/api/gates", "/api/gates/", "/api",
                                     "/%2e%2e/etc", "/gate/4", "//fz/gate/4"]))  # fmt: skip
    return {
        "kind": f"route_{kind}",
        "method": draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"])),
        "path": path,
        "token": draw(odd_token),
        "headers": draw(odd_header),
    }


def send_route(svc: Service, case: dict) -> httpx.Response:
    token = {"RIGHT": svc.token, "WRONG_CASE": svc.token.swapcase()}.get(
        case["token"], case["token"]
    )
    params = {} if token is None else {"token": token}
    svc.client.cookies.clear()
    url = httpx.URL(svc.base + case["path"], params=params)  # the path's encoding as given
    return svc.client.request(case["method"], url, headers=case["headers"], content=b"{}")


@settings(FUZZ, max_examples=ROUTE_EXAMPLES)
@example(case={"kind": "route_gate_path", "method": "GET", "token": "RIGHT", "headers": {},
               "path": f"/fz/gate/{10**30}/api/snapshot"})  # fmt: skip
@given(case=route_case())
def test_odd_paths_tokens_and_headers_get_a_4xx_line(service, case):
    """No path, token or header makes the service answer 5xx; a refusal is one line. A gate's
    path with this gate's token may be served (2xx/3xx); nothing is ever decided."""
    before = listing(service.run_dir)
    response = send_route(service, case)
    TRIED[case["kind"]] += 1
    answers = service.client.get("/healthz").text == "ok"
    check_aftermath(case["kind"], answers, before, listing(service.run_dir), response.status_code)
    if response.status_code >= 400:
        text = response.text.strip()
        assert text and "Traceback" not in text, text[:300]
        assert "\n" not in text or response.headers["content-type"].startswith("text/html"), text[
            :300
        ]
    assert not service.ticket.edits_path.exists()
    assert [run for run, _ in service.resumed if run == "fz"] == []


@pytest.fixture(scope="module")
def basic_service(tmp_path_factory):
    """A service with Basic auth (as off loopback), its gate, and a throttle that never
    locks the fuzzing client out (what the throttle does is tested in test_gate_hardening)."""
    from interaction_app.http_safety import Throttle

    run_dir = tmp_path_factory.mktemp("basic") / "runs"
    ticket, token = write_gate(run_dir, run="ba", n=20)
    throttle = Throttle(limit=10**9)
    with (
        running_service(run_dir, basic=("hill", "s3cret"), throttle=throttle) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        yield client, ticket, token


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"))
credentials = st.one_of(
    header_text.map(lambda t: "Basic " + t[:20]),  # not base64, or base64 of junk
    st.binary(max_size=20).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.tuples(st.text(max_size=8), st.text(max_size=8)).map(
        lambda up: "Basic " + base64.b64encode(f"{up[0]}:{up[1]}".encode()).decode()
    ),
    header_text.map(lambda t: t[:20]),  # another scheme, latin-1 bytes
)


@settings(FUZZ, max_examples=60)
@given(auth=credentials, path=st.sampled_from(["/", "/api/gates", "/nowhere"]))
def test_wrong_basic_credentials_get_401_naming_auth(basic_service, auth, path):
    client, ticket, _ = basic_service
    assert auth != "Basic " + base64.b64encode(b"hill:s3cret").decode()
    auth = auth.strip() or "Basic"  # a header value the client can send
    response = client.get(path, headers={"authorization": auth.encode("latin-1", "replace")})
    TRIED["basic_auth"] += 1
    assert response.status_code == 401, (auth, response.status_code, response.text[:200])
    assert "Basic auth" in response.text and "\n" not in response.text.strip()
    right = httpx.BasicAuth("hill", "s3cret")
    assert client.get("/api/gates", auth=right).status_code == 200  # still serving
    assert not ticket.edits_path.exists()


# ---- rejected small bodies keep no memory ----------------------------------------------------

SMALL_REJECTED = 1_200  # ~45 KiB each before (+50 MiB; the tester's 3,000 kept +134 MiB)
MAX_RETAINED_MIB = 8.0  # measured +4.8 for 3,000 (~1.6 KiB a body, not yet traced)
BAD_SUBMIT = b'{"data": [[{"sample_id": "x", "x": 0, "y": 0}], "approve"]}'  # 58 B, refused


def small_rejections(service: Service, gate_page: Page) -> list:
    """Three senders of small refused bodies: the page's and the service page's ``/call/submit``
    (queued, then refused in the event stream, which these callers never read), and the
    service's JSON decision API (422, malformed row)."""
    submit = "gradio_api/call/submit"
    on_service = f"{service.ticket.page_path()}/{submit}"
    headers, token = {"content-type": "application/json"}, {"token": service.token}
    return [
        lambda: gate_page.client.post(submit, content=BAD_SUBMIT, headers=headers),
        lambda: service.client.post(on_service, params=token, content=BAD_SUBMIT, headers=headers),
        lambda: service.client.post(
            service.decision_path, params=token, content=b'{"decision": "approve", "rows": [1]}'
        ),
    ]


def queue_size(client: httpx.Client, page_path: str, **params) -> int:
    """Events a Gradio page has queued and not started (its public queue status)."""
    status = client.get(f"{page_path}gradio_api/queue/status", params=params)
    return status.json()["queue_size"]


def send_and_drain(service: Service, gate_page: Page, senders: list) -> None:
    """Every sender ``SMALL_REJECTED / 3`` times, then wait until both pages' queues are empty:
    ``/call/`` answers before its event runs, and a backlog is not a leak."""
    for send_one in senders * (SMALL_REJECTED // len(senders)):
        send_one()
    on_service = f"{service.ticket.page_path()}/"
    deadline = time.monotonic() + 120
    while queue_size(gate_page.client, "") or queue_size(
        service.client, on_service, token=service.token
    ):
        assert time.monotonic() < deadline, "the pages' queues did not drain in 120 s"
        time.sleep(0.05)  # a poll interval, not a wait on time: the condition decides


def retained_mib(send_all) -> float:
    """Python allocations (all threads: the servers run in this process) still held after
    ``send_all()`` and a full collection, in MiB."""
    import gc
    import tracemalloc

    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    send_all()
    gc.collect()
    return (tracemalloc.get_traced_memory()[0] - before) / 2**20


def test_rejected_small_bodies_keep_no_memory(service, page):
    """Small refused bodies kept ~45 KiB each (Gradio's SessionState per one-shot
    ``/call/`` session, and its unread messages): now at most a few MiB in all."""
    import tracemalloc

    senders = small_rejections(service, page)
    for send_one in senders * 100:  # fill what is bounded (64 sessions per page) first
        assert send_one().status_code in (200, 422)
    tracemalloc.start(1)  # one frame: cheap; only totals are compared
    try:
        grown = retained_mib(lambda: send_and_drain(service, page, senders))
    finally:
        tracemalloc.stop()
    TRIED["small_rejected"] += SMALL_REJECTED
    print(f"\n{SMALL_REJECTED} small rejected bodies: +{grown:.2f} MiB of Python allocations")
    assert grown < MAX_RETAINED_MIB, f"{grown:.1f} MiB retained"
    assert service.client.get("/healthz").text == "ok" and page.decided == []
    assert not service.ticket.edits_path.exists()


def test_zz_payload_count(service):
    """Runs last (file order): payloads tried, crashes, writes and peak memory."""
    total = sum(TRIED.values())
    on_page = sum(n for kind, n in TRIED.items() if kind.startswith("page_"))
    peak = MEMORY.sample()
    print(
        f"\ngate service fuzz: {total} payloads ({total - on_page} service, {on_page} page), "
        f"{len(CRASHES)} crashes, {len(WRITES)} writes, "
        f"peak RSS {peak:.0f} MiB (+{peak - MEMORY.base:.0f})"
    )
    print("  by kind: " + ", ".join(f"{kind} {n}" for kind, n in sorted(TRIED.items())))
    assert not CRASHES and not WRITES, (CRASHES, WRITES)
    assert total >= MIN_TRIED, TRIED
    assert peak - MEMORY.base < MAX_RSS_GROWTH_MIB
    assert service.client.get("/healthz").text == "ok"
