"""The benchmark's scale-out mode, the parts that need no running deployment: choosing the
registries, the load balancer's configuration, following a redirect to the bytes, and the
arithmetic of the report (`benchmarks/`; the benchmark itself is run by hand)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's benchmarks/

run = pytest.importorskip("benchmarks.run")
report = pytest.importorskip("benchmarks.report")
render = pytest.importorskip("benchmarks.render")
rawpull = pytest.importorskip("benchmarks.rawpull")
scaleout = pytest.importorskip("benchmarks.scaleout")
side = pytest.importorskip("benchmarks.side")
procinfo = pytest.importorskip("benchmarks.procinfo")
servers = pytest.importorskip("benchmarks.servers")
scenarios = pytest.importorskip("benchmarks.scenarios")

ALL_FOUR = {"haven", "reference", "haven-scaleout-1", "haven-scaleout-2"}


# -- which registries run ------------------------------------------------------------------


def _chosen(*argv: str) -> set[str]:
    present = run.chosen(run.parse_args(list(argv)))
    return {name for name, on in present.items() if on}


def test_by_default_haven_and_the_reference_run() -> None:
    assert _chosen() == {"haven", "reference"}


def test_scale_out_adds_one_node_and_two_nodes() -> None:
    assert _chosen("--scale-out") == ALL_FOUR


def test_servers_names_exactly_the_registries_to_run() -> None:
    assert _chosen("--servers", "haven-scaleout-1", "haven-scaleout-2") == {
        "haven-scaleout-1",
        "haven-scaleout-2",
    }


def test_haven_only_drops_the_reference_and_reference_only_drops_every_haven() -> None:
    assert _chosen("--scale-out", "--haven-only") == ALL_FOUR - {"reference"}
    assert _chosen("--scale-out", "--reference-only") == {"reference"}


def test_an_unknown_registry_is_refused() -> None:
    with pytest.raises(SystemExit):
        run.parse_args(["--servers", "haven-scaleout-3"])


# -- the deployment's pieces ---------------------------------------------------------------


def test_the_load_balancer_config_keeps_connections_and_stays_in_its_prefix(
    tmp_path: Path,
) -> None:
    text = scaleout.nginx_config(tmp_path, 8080, [5001, 5002], None)
    assert "server 127.0.0.1:5001;" in text and "server 127.0.0.1:5002;" in text
    assert "listen 127.0.0.1:8080;" in text
    assert "daemon off;" in text
    assert "keepalive 128;" in text
    assert 'proxy_set_header Connection "";' in text and "proxy_http_version 1.1;" in text
    assert "proxy_set_header Host $http_host;" in text  # token realm names the front door
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "access_log off;" in text
    assert "user " not in text
    # every path nginx writes is inside the prefix, never under /var
    paths = [word.rstrip(";") for word in text.split() if word.startswith("/") and word != "/"]
    assert paths and all(Path(p).is_relative_to(tmp_path) for p in paths)
    as_root = scaleout.nginx_config(tmp_path, 8080, [5001], "root root")
    assert as_root.startswith("user root root;\n")


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    if not Path(scaleout.NGINX).exists():
        pytest.skip("nginx is not installed (apt-get install -y nginx)")
    config = tmp_path / "nginx.conf"
    config.write_text(scaleout.nginx_config(tmp_path, 8080, [5001, 5002], None))
    done = subprocess.run(
        [scaleout.NGINX, "-t", "-p", str(tmp_path), "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def test_the_deployment_database_is_on_the_admin_urls_server() -> None:
    url = scaleout.database_url("postgresql://postgres@127.0.0.1:5432/postgres", "haven_b1")
    assert url == "postgresql://postgres@127.0.0.1:5432/haven_b1"
    with_query = scaleout.database_url("postgresql://u@h/db?sslmode=disable", "x")
    assert with_query == "postgresql://u@h/x"
    first, second = scaleout.database_name(), scaleout.database_name()
    assert first != second and first.startswith("haven_bench_") and first == first.lower()


def test_the_shared_secret_key_is_a_fernet_key() -> None:
    key = scaleout.fernet_key()
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert scaleout.fernet_key() != key


def test_a_deployment_is_read_whole_from_one_scan_of_proc() -> None:
    code = "import time; time.sleep(30)"
    sleeper = subprocess.Popen([sys.executable, "-c", code, "haven-bench-marker"])
    try:
        assert procinfo.find_descendant(os.getpid(), "haven-bench-marker") == sleeper.pid
        cpu = procinfo.trees_cpu_seconds({"me": os.getpid(), "sleeper": sleeper.pid})
        assert set(cpu) == {"me", "sleeper"} and cpu["me"] > 0
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cpu_between_two_readings_is_counted_part_by_part() -> None:
    before = servers.CpuParts({"haven-1": 1.0}, {"nginx": 0.5, "postgres": 2.0})
    after = servers.CpuParts({"haven-1": 1.5}, {"nginx": 0.75, "postgres": 1.0, "azurite": 3.0})
    spent = side.cpu_delta(before, after)
    assert spent.registry == {"haven-1": 0.5}
    # a part that appeared counts from zero; one whose processes went counts nothing
    assert spent.support == {"nginx": 0.25, "postgres": 0.0, "azurite": 3.0}
    assert spent.total() == pytest.approx(3.75)


# -- following a redirect to the bytes -----------------------------------------------------


def test_a_redirect_head_names_where_to_go() -> None:
    head = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:9/a/b?sig=x\r\n"
    with pytest.raises(rawpull._Redirected) as hop:
        rawpull._parse_head(head)
    assert hop.value.location == "http://127.0.0.1:9/a/b?sig=x"
    assert rawpull._parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 12") == 12
    with pytest.raises(rawpull.PullError):
        rawpull._parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0")


def test_redirect_targets_resolve_against_the_request() -> None:
    assert rawpull.redirect_target("http://h:1/v2/x", "http://127.0.0.1:9/a?s=1") == (
        "127.0.0.1",
        9,
        "/a?s=1",
    )
    assert rawpull.redirect_target("http://h:1/v2/x", "/b") == ("h", 1, "/b")
    with pytest.raises(rawpull.PullError):
        rawpull.redirect_target("http://h:1/v2/x", "https://store.example/b")


async def test_a_pull_follows_the_redirect_without_the_registrys_credentials() -> None:
    body = b"layer bytes " * 1000
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if head.startswith(b"GET /v2/"):
            location = f"http://127.0.0.1:{port}/store/blob?sig=abc"
            writer.write(
                f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await rawpull.raw_pull(
            "127.0.0.1", port, "/v2/r/blobs/sha256:x", True, {"Authorization": "Bearer t"}
        )
    assert result.received == len(body)
    assert result.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert result.redirects == 1
    assert b"Authorization: Bearer t" in seen[0]
    assert seen[1].startswith(b"GET /store/blob?sig=abc ") and b"Authorization" not in seen[1]


# -- the report ----------------------------------------------------------------------------


def _get_round(rate: float, requests: int, parts: dict[str, float]) -> object:
    registry = sum(v for k, v in parts.items() if k.startswith("haven"))
    timing = side.Timing(
        seconds=1.0,
        client_cpu=0.2,
        server_cpu=sum(parts.values()),
        other_cpu=0.1,
        registry_cpu=registry,
        parts=parts,
    )
    return side.Measurement(rate, timing, {"requests": requests})


def _manifest_get() -> object:
    res = report.ScenarioResult(scenarios.BY_NAME["manifest-get"])
    res.sides["haven-scaleout-1"].measurements = [
        _get_round(10_000, 10_000, {"haven": 0.5, "azurite": 0.0, "postgres": 0.0})
    ]
    res.sides["haven-scaleout-2"].measurements = [
        _get_round(12_000, 12_000, {"haven-1": 0.6, "haven-2": 0.6, "nginx": 0.36, "postgres": 0.0})
    ]
    return res


def test_two_nodes_are_compared_with_one_against_the_scale_out_target() -> None:
    res = _manifest_get()
    assert res.scale_ratio == pytest.approx(1.2)
    assert res.scale_met is False
    res.sides["haven-scaleout-2"].measurements = [
        _get_round(17_000, 17_000, {"haven-1": 0.5, "haven-2": 0.5})
    ]
    assert res.scale_met is True
    pull = report.ScenarioResult(scenarios.BY_NAME["pull"])
    assert pull.scale_met is None  # no target for two nodes there


def test_cpu_per_request_is_split_by_process_and_explains_the_cores_needed() -> None:
    res = _manifest_get()
    per = res.sides["haven-scaleout-2"].cpu_us_per_request()
    assert per == pytest.approx(
        {"haven-1": 50, "haven-2": 50, "nginx": 30, "postgres": 0, "client": 16.67, "other": 8.33},
        rel=1e-3,
    )
    notes = [n for n in report.footnotes([res]) if "two nodes / one node" in n]
    assert len(notes) == 1
    # 1.6 x 10,000 req/s at (100 + 30 + 16.7) µs per request: 2.3 cores
    assert "16,000 req/s" in notes[0] and "would need 2.3 cores" in notes[0]


def test_cpu_per_gib_pulled_pools_the_rounds_and_checks_the_redirect() -> None:
    res = report.ScenarioResult(scenarios.BY_NAME["pull"])
    gib = report.GiB

    def pulled(registry_cpu: float, redirected: int) -> object:
        timing = side.Timing(seconds=1.0, registry_cpu=registry_cpu)
        detail = {"bytes": gib // 2, "pulls": 1, "redirected": redirected}
        return side.Measurement(1.0, timing, detail)

    res.sides["haven"].measurements = [pulled(0.15, 0), pulled(0.17, 0)]
    # ticks of 10 ms: 0 and 0.01 s of CPU in two halves of a GiB pool to 10 ms/GiB
    res.sides["haven-scaleout-1"].measurements = [pulled(0.0, 1), pulled(0.01, 1)]
    cpu = res.cpu_ms_per_gib()
    assert cpu["haven"] == pytest.approx(320)
    assert cpu["haven-scaleout-1"] == pytest.approx(10)
    assert cpu["reference"] is None
    assert res.cpu_ms_per_pull()["haven-scaleout-1"] == pytest.approx(5)
    assert res.redirect_met is True
    res.sides["haven-scaleout-2"].measurements = [pulled(0.05, 1), pulled(0.05, 1)]
    assert res.redirect_met is False  # 100 ms/GiB > 0.1 x 320
    doc = res.to_json()
    assert doc["registry_cpu_ms_per_gib"]["haven-scaleout-2"] == pytest.approx(100)
    assert doc["redirect_cpu_target_met"] is False


def test_the_table_shows_scale_out_columns_only_when_it_ran() -> None:
    res = _manifest_get()
    plain = report.table([res], {"haven": True, "reference": True})
    assert "haven-scaleout" not in plain and "2 nodes/1" not in plain
    everything = dict.fromkeys(report.SIDES, True)
    full = report.table([res], everything)
    header = full.splitlines()[0].split()
    assert header[:6] == ["scenario", "unit", "haven", "spread", "reference", "spread"]
    assert "haven-scaleout-2" in header and "nodes/1" in header
    assert "1.20x" in full


def _doc(registries: dict[str, str], results: list[dict[str, object]]) -> dict[str, object]:
    return {
        "machine": {
            "date": "2026-11-28T00:00:00+00:00",
            "nproc": 2,
            "cpu_model": "cpu",
            "memory_gib": 1.0,
            "disk": "disk",
            "kernel": "k",
            "reference_version": "2.8.2",
            "python": "3.11",
            "aiohttp": "3",
        },
        "profile": {"name": "quick"},
        "rounds": 2,
        "elapsed_s": 10.0,
        "haven_auth": "bearer",
        "registries": registries,
        "results": results,
    }


def test_a_run_recorded_before_scale_out_renders_as_before() -> None:
    side_doc = {"median": 10.0, "spread_pct": 1.0, "error": None}
    old = _doc(
        {"haven": "haven serve", "reference": "docker-registry"},
        [
            {
                "scenario": "pull",
                "unit": "MB/s",
                "haven": side_doc,
                "reference": side_doc,
                "ratio_haven_over_reference": 1.0,
                "target": ">= 1.5x",
                "target_met": False,
            }
        ],
    )
    text = render.render(old)
    assert "| scenario | unit | Haven | reference | Haven/ref | target | met |" in text
    assert "| pull | MB/s | 10.0 ±1% | 10.0 ±1% | 1.00x | >= 1.5x | **no** |" in text
    assert "scale-out" not in text and "ms/GiB" not in text


def test_a_scale_out_run_renders_all_four_and_the_pull_cpu() -> None:
    res = _manifest_get()
    pull = report.ScenarioResult(scenarios.BY_NAME["pull"])
    timing = side.Timing(seconds=1.0, registry_cpu=0.1)
    pull.sides["haven"].measurements = [side.Measurement(1.0, timing, {"bytes": report.GiB})]
    registries = {name: name for name in report.SIDES}
    text = render.render(
        _doc(registries, [res.to_json(), pull.to_json()])
        | {"footnotes": report.footnotes([res, pull])}
    )
    assert "| Haven scale-out, 1 node | Haven scale-out, 2 nodes |" in text
    assert "| manifest-get | req/s | pending |" not in text
    assert "1.20x | >= 1.6x | **no** |" in text
    assert "| pull | ms/GiB | 100 |" in text
    assert "* manifest-get, two nodes / one node = 1.20x" in text
