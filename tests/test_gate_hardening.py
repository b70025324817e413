"""Hostile requests against both gate servers: the in-process page and the gate service.

Oversized bodies (declared or chunked) are refused before they are buffered, so memory stays
flat; there is no upload route; a foreign Host header is refused (DNS rebinding); failed logins
are throttled; TLS works with gate.ssl_certfile / gate.ssl_keyfile; the config refuses a
password variable that is not hill's own. Every refusal is one line.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import ipaddress
import math
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from app_helpers import synthetic_context, synthetic_snapshot
from test_gate_service import running_service, write_gate

from hill_core.config import Config, ConfigError, GateConfig
from interaction_app.http_safety import Throttle, allowed_hosts, body_cap, host_name
from interaction_app.server import GateServerError, check_gate, launch_gate

pytestmark = pytest.mark.slow  # starts web servers

N_POINTS = 300
MIB = 2**20
ROW = b'{"sample_id": 3000, "x": 1.0, "y": 1.0, "moved": false},'
# Gradio's routes that read a body: the probe used /call/submit (its queue keeps it).
GRADIO_POSTS = ("gradio_api/call/submit", "gradio_api/queue/join", "gradio_api/run/submit")
# Components that would give the page a file input (and a use for /gradio_api/upload).
FILE_COMPONENTS = {"file", "files", "uploadbutton", "image", "imageeditor", "audio", "video",
                   "model3d", "gallery", "simpleimage", "multimodaltextbox"}  # fmt: skip


# ---- helpers, shared with the fuzz test ------------------------------------------------------


def rss_mib() -> float:
    """This process's resident memory now (the servers under test run in it)."""
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024


class PeakRss:
    """Peak resident memory of this process since ``start()``: the kernel's high-water mark
    (reset through /proc/self/clear_refs) where allowed, else the largest sample taken."""

    def __init__(self):
        self.base = self.peak = rss_mib()
        self.kernel = False

    def start(self) -> PeakRss:
        gc.collect()
        self.base = self.peak = rss_mib()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.kernel = True
        except OSError:
            self.kernel = False
        return self

    def sample(self) -> float:
        now = rss_mib()
        if self.kernel:
            hwm = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
            now = max(now, int(hwm[1]) / 1024)
        self.peak = max(self.peak, now)
        return self.peak


def streamed_body(n_bytes: int, head: bytes = b'{"data": [[', tail: bytes = b'], "approve"]}'):
    """A JSON body of about ``n_bytes`` that the client never holds whole: (length, chunks)."""
    chunk = ROW * (64 * 1024 // len(ROW))
    count = max(1, math.ceil((n_bytes - len(head) - len(tail)) / len(chunk)))  # >= n_bytes
    length = len(head) + count * len(chunk) - 1 + len(tail)

    def chunks():
        yield head
        for k in range(count):
            yield chunk if k < count - 1 else chunk[:-1]  # no comma after the last row
        yield tail

    return length, chunks


def post_big(client: httpx.Client, url: str, n_bytes: int, chunked: bool, **kw) -> httpx.Response:
    length, chunks = streamed_body(n_bytes, **kw)
    headers = {"content-type": "application/json"}
    if not chunked:
        headers["content-length"] = str(length)  # declared: refused before one byte is read
    return client.post(url, content=chunks(), headers=headers)


def one_line(response: httpx.Response) -> str:
    text = response.text.strip()
    assert text and "\n" not in text and "Traceback" not in text, text[:300]
    return text


def self_signed(folder: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files under ``folder``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hill gate test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certfile), str(keyfile)


@contextlib.contextmanager
def page(tmp_path: Path, gate: GateConfig | None = None, n: int = N_POINTS) -> Iterator[str]:
    """An in-process gate page; yields its URL (ending in /)."""
    context = synthetic_context(tmp_path / "edits" / "gate_0004.parquet")
    with launch_gate(synthetic_snapshot(n), context, lambda d: None, gate or GateConfig()) as srv:
        yield srv.url


@contextlib.contextmanager
def service(tmp_path: Path, **options) -> Iterator[tuple[str, str]]:
    """The gate service with one open gate; yields (base URL, the gate's page path + token)."""
    run_dir = tmp_path / "runs"
    ticket, token = write_gate(run_dir, n=N_POINTS)
    options.setdefault("resume", lambda ticket, decided: None)  # no Prefect here
    with running_service(run_dir, **options) as base:
        yield base, f"{ticket.page_path()}/", token


# ---- body limit and memory -------------------------------------------------------------------


def test_oversized_bodies_are_refused_unread_and_memory_stays_flat(tmp_path):
    """The issue saw each rejected 20 MB body on /call/submit keep ~142 MiB (986 -> 2,124 MiB
    after 8); now every one is 413 before Gradio reads it, on the page and on the service."""
    with (
        page(tmp_path / "page") as url,
        service(tmp_path / "svc") as (base, gate_path, token),
        httpx.Client(timeout=120) as client,
    ):
        targets = [f"{url}{route}" for route in GRADIO_POSTS]
        targets += [f"{base}{gate_path}{route}?token={token}" for route in GRADIO_POSTS]
        targets.append(f"{base}{gate_path}api/decision?token={token}")
        for target in targets:  # warm each route once: Gradio builds things on first use
            client.post(target, json={"data": []})
        memory = PeakRss().start()
        for k in range(8):
            for target in targets:
                refused = post_big(client, target, 20_000_000, chunked=bool(k % 2))
                assert refused.status_code == 413, (target, refused.text[:200])
                error = refused.json()["error"]
                assert "body" in error and f"{body_cap(N_POINTS)} bytes" in error
        gc.collect()
        grown = rss_mib() - memory.base
        print(f"\n8 x 20 MB bodies x {len(targets)} routes: RSS {rss_mib():.0f} MiB (+{grown:.0f})")
        assert grown < 50, f"RSS grew {grown:.0f} MiB under refused bodies"
        assert client.get(f"{url}config").status_code == 200  # both still serve
        assert client.get(f"{base}/healthz").text == "ok"


def test_bodies_within_the_cap_still_work_when_chunked(tmp_path):
    rows = [{"sample_id": 3000 + 3 * k, "x": 0.5, "y": 0.5, "moved": True} for k in range(3)]
    body = httpx.Request("POST", "/", json={"decision": "approve", "rows": rows}).read()
    with service(tmp_path) as (base, gate_path, token), httpx.Client(base_url=base) as client:
        url = f"{gate_path}api/decision?token={token}"
        ok = client.post(url, content=iter([body[:10], body[10:]]))  # no Content-Length
        assert ok.status_code == 200 and ok.json()["decision"] == "approve", ok.text


def test_a_non_numeric_content_length_is_refused_in_one_line():
    """h11 refuses it before the app; the guard's own check is tested on its own."""
    import asyncio

    from interaction_app.http_safety import BodyLimit

    sent = []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("reached the app")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/api/x", "headers": [(b"content-length", b"\xb2")]}
    asyncio.run(BodyLimit(app, 100)(scope, None, send))
    assert sent[0]["status"] == 400 and b"Content-Length" in sent[1]["body"]


# ---- no uploads --------------------------------------------------------------------------------


def test_no_upload_route_and_no_file_input(tmp_path):
    files = {"files": ("big.bin", b"x" * 1024, "application/octet-stream")}
    with (
        page(tmp_path / "page") as url,
        service(tmp_path / "svc") as (base, gate_path, token),
        httpx.Client(timeout=30) as client,
    ):
        config = client.get(f"{url}config").json()
        kinds = {c.get("type") for c in config["components"]}
        assert not kinds & FILE_COMPONENTS, kinds
        for target in (f"{url}gradio_api/upload", f"{base}{gate_path}gradio_api/upload"):
            refused = client.post(target, params={"token": token}, files=files)
            assert refused.status_code in (404, 405) and "upload" in one_line(refused)
            progress = client.get(f"{target}_progress", params={"token": token, "upload_id": "1"})
            assert progress.status_code in (404, 405)


# ---- Host header -------------------------------------------------------------------------------


def test_foreign_host_headers_are_refused_on_both(tmp_path):
    with (
        page(tmp_path / "page") as url,
        service(tmp_path / "svc") as (base, gate_path, token),
        httpx.Client(timeout=30) as client,
    ):
        port_page, port_svc = url.rstrip("/").rsplit(":", 1)[1], base.rsplit(":", 1)[1]
        for target, port in ((f"{url}config", port_page), (f"{base}/healthz", port_svc)):
            for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
                refused = client.get(target, headers={"host": host})
                assert refused.status_code == 400 and "Host" in one_line(refused), host
            for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}", "LOCALHOST"):
                assert client.get(target, headers={"host": host}).status_code == 200, host
        gate = client.get(f"{base}{gate_path}", params={"token": token}, headers={"host": "x.io"})
        assert gate.status_code == 400  # before the token is even looked at


def test_allowed_hosts_add_the_service_url_and_the_bind_address():
    gate = GateConfig(service_url="https://Gates.Example.org:8443/", host="10.0.0.5")
    hosts = allowed_hosts(gate, "0.0.0.0")
    assert hosts == {"127.0.0.1", "localhost", "::1", "gates.example.org", "10.0.0.5"}
    assert allowed_hosts(GateConfig(allowed_hosts=["lab.local"])) == {"lab.local", "127.0.0.1"}
    assert [host_name(h) for h in ("[::1]:80", "a.b:1", "A.B.", "::1")] == [
        "::1",
        "a.b",
        "a.b",
        "::1",
    ]
    with pytest.raises(ConfigError, match="gate.allowed_hosts"):
        GateConfig(allowed_hosts=["a b"])


# ---- login throttling --------------------------------------------------------------------------


def test_throttle_blocks_after_five_failures_and_forgets_after_the_backoff():
    now = [0.0]
    throttle = Throttle(limit=5, window_s=60, backoff_s=30, clock=lambda: now[0])
    for _ in range(4):
        throttle.failed("a")
    assert throttle.retry_after("a") == 0
    throttle.failed("a")
    assert throttle.retry_after("a") == 30 and throttle.retry_after("b") == 0
    now[0] = 31.0
    assert throttle.retry_after("a") == 0
    for _ in range(4):  # failures spread wider than the window never block
        throttle.failed("c")
        now[0] += 20
    throttle.failed("c")
    assert throttle.retry_after("c") == 0
    small = Throttle(max_clients=3)
    for k in range(100):
        small.failed(f"10.0.0.{k}")
    assert len(small.failures) == 3  # an address spray cannot grow it


def test_page_logins_are_throttled(tmp_path, monkeypatch):
    monkeypatch.setenv("HILL_GATE_AUTH", "ana:s3cret")
    with page(tmp_path) as url, httpx.Client(timeout=30) as client:
        codes = [
            client.post(f"{url}login", data={"username": "ana", "password": f"guess{k}"})
            for k in range(100)
        ]
        statuses = [r.status_code for r in codes]
        assert statuses[:5] == [400] * 5 and set(statuses[5:]) == {429}, statuses
        assert 1 <= int(codes[-1].headers["retry-after"]) <= 60
        assert "too many failed logins" in one_line(codes[-1])
        right = client.post(f"{url}login", data={"username": "ana", "password": "s3cret"})
        assert right.status_code == 429  # the right password waits out the back-off too


def test_service_basic_auth_is_throttled(tmp_path):
    with (
        service(tmp_path, basic=("ana", "s3cret")) as (base, gate_path, token),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        for _ in range(20):  # asking without credentials is how browsers start: not a failure
            assert client.get("/api/gates").status_code == 401
        assert client.get("/api/gates", auth=("ana", "s3cret")).status_code == 200
        statuses = [client.get("/", auth=("ana", f"guess{k}")).status_code for k in range(100)]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
        blocked = client.get("/api/gates", auth=("ana", "s3cret"))
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert "try again" in blocked.json()["error"]
        assert client.get("/healthz").text == "ok"  # probes and gate pages are not behind it
        assert client.get(gate_path, params={"token": token}).status_code == 200


def test_a_forged_forwarded_for_does_not_dodge_the_throttle(tmp_path, monkeypatch):
    """30 wrong logins, each naming another client in X-Forwarded-For, from a client that is
    no trusted proxy: throttled after 5, on the service and on the page alike. (Before, loopback
    was trusted, every forged address counted apart, and the right password then got in.)"""
    forged = [{"X-Forwarded-For": f"203.0.113.{k}"} for k in range(30)]
    with (
        service(tmp_path / "svc", basic=("ana", "s3cret")) as (base, _, _),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        statuses = [client.get("/", auth=("ana", "guess"), headers=h).status_code for h in forged]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
        right = client.get("/api/gates", auth=("ana", "s3cret"), headers=forged[0])
        assert right.status_code == 429
    monkeypatch.setenv("HILL_GATE_AUTH", "ana:s3cret")
    with page(tmp_path / "page") as url, httpx.Client(timeout=30) as client:
        statuses = [
            client.post(f"{url}login", data={"username": "ana", "password": "guess"}, headers=h)
            for h in forged
        ]
        assert [r.status_code for r in statuses[5:]] == [429] * 25


def test_a_trusted_proxy_names_its_clients(tmp_path):
    """Behind a proxy the user lists, each client is throttled on its own address."""
    with (
        service(tmp_path / "svc", basic=("ana", "s3cret"), proxies=("127.0.0.1",)) as (base, _, _),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        for k in range(10):  # ten clients, one wrong login each: none is throttled
            headers = {"X-Forwarded-For": f"198.51.100.{k}"}
            assert client.get("/", auth=("ana", "guess"), headers=headers).status_code == 401


# ---- TLS ---------------------------------------------------------------------------------------


def test_service_and_page_answer_over_https(tmp_path):
    certfile, keyfile = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=certfile)
    with (
        service(tmp_path / "svc", tls=(certfile, keyfile)) as (base, gate_path, token),
        httpx.Client(base_url=base, verify=trust, timeout=30) as client,
    ):
        assert base.startswith("https://") and client.get("/healthz").text == "ok"
        first = client.get(gate_path, params={"token": token})
        assert first.status_code == 200 and "; Secure" in first.headers["set-cookie"]
    gate = GateConfig(ssl_certfile=certfile, ssl_keyfile=keyfile)
    with page(tmp_path / "page", gate) as url, httpx.Client(verify=trust, timeout=30) as client:
        assert url.startswith("https://") and client.get(f"{url}config").status_code == 200


def test_cookie_is_secure_when_the_service_url_is_https(tmp_path):
    with (
        service(tmp_path, secure_cookie=True) as (base, gate_path, token),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        cookie = client.get(gate_path, params={"token": token}).headers["set-cookie"]
        assert "; Secure" in cookie  # TLS ends at the proxy; the browser still sees https
    with service(tmp_path / "plain") as (base, gate_path, token):
        cookie = httpx.get(f"{base}{gate_path}", params={"token": token}).headers["set-cookie"]
        assert "Secure" not in cookie


def test_tls_settings_are_checked_up_front(tmp_path):
    with pytest.raises(ConfigError, match="both or neither"):
        Config().replace(**{"gate.ssl_certfile": "cert.pem"})
    gate = GateConfig(ssl_certfile=str(tmp_path / "nope.pem"), ssl_keyfile=str(tmp_path / "k"))
    with pytest.raises(GateServerError, match=r"gate.ssl_certfile .*nope.pem: no such file"):
        check_gate(gate)
    context = synthetic_context(tmp_path / "e.parquet")
    with pytest.raises(GateServerError, match="no such file"):
        launch_gate(synthetic_snapshot(20), context, print, gate)


# ---- config and empty snapshots ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["PATH", "HOME", "HILL_", "hill_gate_auth", "HILL-AUTH", ""])
def test_auth_env_must_name_a_hill_variable(name):
    with pytest.raises(ConfigError, match=r"gate.auth_env: .* must match HILL_\[A-Z0-9_\]\+"):
        Config().replace(**{"gate.auth_env": name})


def test_auth_env_of_hill_is_accepted():
    assert Config().replace(**{"gate.auth_env": "HILL_GATE_AUTH_2"}).gate.auth_env.endswith("_2")


def test_an_empty_snapshot_is_one_line_on_both(tmp_path):
    empty = synthetic_snapshot(10).iloc[:0]
    context = synthetic_context(tmp_path / "e.parquet")
    with pytest.raises(GateServerError, match="empty") as err:
        launch_gate(empty, context, print, GateConfig())
    assert "\n" not in str(err.value)
    run_dir = tmp_path / "runs"
    ticket, token = write_gate(run_dir, n=10)
    pd.DataFrame(empty).to_parquet(ticket.snapshot_path)  # as a broken run might leave it
    with running_service(run_dir) as base:
        refused = httpx.get(f"{base}{ticket.page_path()}/", params={"token": token})
        assert refused.status_code == 503 and "empty" in one_line(refused)
        assert httpx.get(f"{base}/healthz").text == "ok"  # the other gates carry on


# ---- the page's calls (readout, item, status) ------------------------------------------------

BAD_READOUTS = {
    "a string": ("approve", r"ops must be an object"),
    "an id that is a letter": ({"moved": [["a", 0.0, 0.0]]}, r"ops\.moved\[0\]"),
    "a NaN position": ({"moved": [[3000, float("nan"), 0.0]]}, r"ops\.moved\[0\]"),
    "offsets of the wrong length": ({"offsets": [[0, 0]]}, r"ops\.offsets must hold 10"),
    "a scale that is text": ({"scales": ["big"] * 10}, r"ops\.scales\[0\]"),
    "a label outside the classes": ({"labels": [[3000, 12, False]]}, r"ops\.labels\[0\]"),
    "an unknown field": ({"drag": 1}, r"ops\.drag is not a field"),
}


def test_the_readout_answers_bad_input_with_400_naming_the_field(tmp_path):
    """It answered 500 with a traceback for a string, an id 'a' or a NaN."""
    import json as json_module
    import urllib.error

    from app_helpers import page_call

    with page(tmp_path) as url:
        good = page_call(url, "readout", {"moved": [[3000, 0.5, -0.5]]})
        assert set(good) >= {"l_center", "l_spread", "l_point", "l_human"}
        for name, (ops, field) in BAD_READOUTS.items():
            # NaN goes out as JSON's NaN token, as a careless client would send it
            with pytest.raises(urllib.error.HTTPError) as refused:
                page_call(url, "readout", ops)
            error = refused.value
            detail = json_module.loads(error.read())["error"]
            assert error.code == 400, (name, error.code)
            assert re.search(field, detail) and "\n" not in detail, (name, detail)
        for name, data, field in (("item", "a", "sample_id"), ("status", float("nan"), "info")):
            with pytest.raises(urllib.error.HTTPError) as refused:  # a 400 naming it, not a 500
                page_call(url, name, data)
            detail = json_module.loads(refused.value.read())["error"]
            assert refused.value.code == 400 and field in detail and "\n" not in detail, detail
        assert page_call(url, "status", None)["decided"] is False  # the page still answers
