"""`haven repository …`, `haven manifest …` and `haven show-usage` against a fake registry:
the data-plane requests they make (path, query, token scopes, Host), what they print, and
their failures."""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from .certificates import self_signed
from .conftest import Haven
from .fake_haven import (
    OWNER,
    OWNER_PASSWORD,
    Answer,
    FakeHaven,
    Recorded,
    error,
    oci_error,
    running,
)
from .test_commands import _run_on_a_tty, one_error_line


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


TAGGED = digest_of("tagged")
UNTAGGED = digest_of("untagged")
OTHER = digest_of("other")
ATTRIBUTES = {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}
REPOSITORY = {
    "registry": "reg.example.com",
    "imageName": "samples/hello",
    "createdTime": "2024-01-01T00:00:00Z",
    "lastUpdateTime": "2024-01-02T00:00:00Z",
    "manifestCount": 3,
    "tagCount": 2,
    "changeableAttributes": ATTRIBUTES,
}
TAG = {
    "name": "v1",
    "digest": TAGGED,
    "createdTime": "2024-01-01T00:00:00Z",
    "lastUpdateTime": "2024-01-01T00:00:00Z",
    "signed": False,
    "changeableAttributes": ATTRIBUTES,
}


def manifest(digest: str, tags: list[str], time: str = "2024-01-01T00:00:00Z") -> dict[str, object]:
    return {
        "digest": digest,
        "imageSize": 1234,
        "createdTime": time,
        "lastUpdateTime": time,
        "architecture": "amd64",
        "os": "linux",
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "configMediaType": "application/vnd.oci.image.config.v1+json",
        "tags": tags,
        "changeableAttributes": ATTRIBUTES,
    }


MANIFESTS = [
    manifest(TAGGED, ["v1", "latest"], "2024-01-03T00:00:00Z"),
    manifest(UNTAGGED, []),
    manifest(OTHER, [], "2024-01-02T00:00:00Z"),
]
ACR = "/acr/v1/samples/hello"


def wrapped(key: str, value: object) -> dict[str, object]:
    return {"registry": "reg.example.com", "imageName": "samples/hello", key: value}


def data(fake: FakeHaven) -> list[Recorded]:
    return fake.data_requests()


# ------------------------------------------------------------------------ list, paging


def test_list_follows_link_paging_with_a_catalog_token_through_the_host_header(
    haven: Haven, registry: FakeHaven
) -> None:
    def catalog(request: Recorded) -> Answer:
        if "last" not in request.query:
            return Answer(
                200,
                {"repositories": ["a", "b"]},
                {"Link": '</acr/v1/_catalog?last=b&n=100>; rel="next"'},
            )
        return Answer(200, {"repositories": ["c"]})

    registry.route("GET", "/acr/v1/_catalog", catalog)
    result = haven("repository", "list", "-n", "reg")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == ["a", "b", "c"]
    first, second = data(registry)
    assert first.query == {"n": ["100"]}
    assert second.query == {"last": ["b"], "n": ["100"]}
    assert first.headers["host"] == "reg.example.com"
    assert registry.scopes(first) == ["registry:catalog:*"]
    token = registry.last("POST", "/oauth2/token").form()
    assert token["grant_type"] == "refresh_token"
    assert token["service"] == "reg.example.com"
    assert token["scope"] == "registry:catalog:*"
    assert registry.last("POST", "/oauth2/exchange").form()["service"] == "reg.example.com"
    # az's outputs: tsv one name a line, table a Result column.
    assert haven("repository", "list", "-n", "reg", "-o", "tsv").stdout == "a\nb\nc\n"
    table = haven("repository", "list", "-n", "reg", "-o", "table").stdout.splitlines()
    assert table[0] == "Result" and table[2:] == ["a", "b", "c"]


def test_list_top_asks_for_that_many_and_stops(haven: Haven, registry: FakeHaven) -> None:
    registry.route(
        "GET",
        "/acr/v1/_catalog",
        Answer(
            200, {"repositories": ["a", "b"]}, {"Link": '</acr/v1/_catalog?last=b&n=2>; rel="next"'}
        ),
    )
    result = haven("repository", "list", "-n", "reg", "--top", "2")
    assert json.loads(result.stdout) == ["a", "b"]
    assert [r.query for r in data(registry)] == [{"n": ["2"]}]


def test_a_login_server_that_resolves_is_called_directly(
    haven: Haven, logged_in: FakeHaven
) -> None:
    logged_in.serve_registry("reg", logged_in.address)
    logged_in.route("GET", "/acr/v1/_catalog", {"repositories": []})
    assert haven("repository", "list", "-n", "reg").stdout == "[]\n"
    assert data(logged_in)[0].headers["host"] == logged_in.address


def test_an_unreachable_login_server_falls_back_to_the_server_with_a_host_header(
    haven: Haven, logged_in: FakeHaven
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    logged_in.serve_registry("reg", closed)
    logged_in.route("GET", "/acr/v1/_catalog", {"repositories": ["x"]})
    result = haven("repository", "list", "-n", "reg")
    assert json.loads(result.stdout) == ["x"], result.stderr
    assert data(logged_in)[-1].headers["host"] == closed


# ------------------------------------------------------------------------ show


@pytest.mark.parametrize(
    ("flags", "path", "answer", "printed"),
    [
        (["--repository", "samples/hello"], ACR, REPOSITORY, REPOSITORY),
        (["--image", "samples/hello:v1"], f"{ACR}/_tags/v1", wrapped("tag", TAG), TAG),
        (["-t", "samples/hello"], f"{ACR}/_tags/latest", wrapped("tag", TAG), TAG),
        (
            ["-t", f"samples/hello@{TAGGED}"],
            f"{ACR}/_manifests/{TAGGED}",
            wrapped("manifest", MANIFESTS[0]),
            MANIFESTS[0],
        ),
    ],
    ids=["repository", "tag", "default-latest", "digest"],
)
def test_show_reads_the_attributes_with_metadata_read(
    haven: Haven,
    registry: FakeHaven,
    flags: list[str],
    path: str,
    answer: object,
    printed: object,
) -> None:
    registry.route("GET", path, answer)
    result = haven("repository", "show", "-n", "reg", *flags)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == printed
    assert registry.scopes(registry.last("GET", path)) == ["repository:samples/hello:metadata_read"]
    locked = haven(
        "repository", "show", "-n", "reg", *flags,
        "--query", "changeableAttributes.writeEnabled", "-o", "tsv",
    )  # fmt: skip
    assert locked.stdout == "true\n"


# ------------------------------------------------------------------------ show-tags


def test_show_tags_prints_names_or_details(haven: Haven, registry: FakeHaven) -> None:
    other = {**TAG, "name": "latest"}
    registry.route("GET", f"{ACR}/_tags", wrapped("tags", [TAG, other]))
    names = haven("repository", "show-tags", "-n", "reg", "--repository", "samples/hello")
    assert json.loads(names.stdout) == ["v1", "latest"]
    detail = haven(
        "repository", "show-tags", "-n", "reg", "--repository", "samples/hello",
        "--detail", "--orderby", "time_desc", "--top", "5",
    )  # fmt: skip
    assert json.loads(detail.stdout) == [TAG, other]
    assert registry.last("GET", f"{ACR}/_tags").query == {"orderby": ["timedesc"], "n": ["5"]}
    table = haven(
        "repository", "show-tags", "-n", "reg", "--repository", "samples/hello", "-o", "table"
    ).stdout.splitlines()
    assert table[0] == "Result" and table[2:] == ["v1", "latest"]
    detailed = haven(
        "repository", "show-tags", "-n", "reg", "--repository", "samples/hello", "--detail",
        "-o", "table",
    ).stdout.splitlines()  # fmt: skip
    assert detailed[0].split() == ["CreatedTime", "Digest", "LastUpdateTime", "Name", "Signed"]


# ------------------------------------------------------------------------ show-manifests


def test_show_manifests_prints_digest_tags_and_timestamp(haven: Haven, registry: FakeHaven) -> None:
    registry.route("GET", f"{ACR}/_manifests", wrapped("manifests", MANIFESTS))
    result = haven("repository", "show-manifests", "-n", "reg", "--repository", "samples/hello")
    assert json.loads(result.stdout) == [
        {"digest": TAGGED, "tags": ["v1", "latest"], "timestamp": "2024-01-03T00:00:00Z"},
        {"digest": UNTAGGED, "tags": [], "timestamp": "2024-01-01T00:00:00Z"},
        {"digest": OTHER, "tags": [], "timestamp": "2024-01-02T00:00:00Z"},
    ]
    detail = haven(
        "repository", "show-manifests", "-n", "reg", "--repository", "samples/hello", "--detail",
        "--orderby", "time_asc",
    )  # fmt: skip
    assert json.loads(detail.stdout) == MANIFESTS
    assert registry.last("GET", f"{ACR}/_manifests").query["orderby"] == ["timeasc"]


def test_the_faqs_query_selects_the_untagged_digests(haven: Haven, registry: FakeHaven) -> None:
    registry.route("GET", f"{ACR}/_manifests", wrapped("manifests", MANIFESTS))
    result = haven(
        "repository", "show-manifests", "-n", "reg", "--repository", "samples/hello",
        "--query", "[?tags[0]==null].digest", "-o", "tsv",
    )  # fmt: skip
    assert result.stdout == f"{UNTAGGED}\n{OTHER}\n"


def test_untagged_manifests_without_a_tags_field_still_get_an_empty_list(
    haven: Haven, registry: FakeHaven
) -> None:
    bare = manifest(UNTAGGED, [])
    del bare["tags"]
    registry.route("GET", f"{ACR}/_manifests", wrapped("manifests", [bare]))
    result = haven("repository", "show-manifests", "-n", "reg", "--repository", "samples/hello")
    assert json.loads(result.stdout)[0]["tags"] == []


# ------------------------------------------------------------------------ delete, untag


def test_delete_by_digest_with_yes_needs_only_the_delete_scope(
    haven: Haven, registry: FakeHaven
) -> None:
    path = f"/v2/samples/hello/manifests/{UNTAGGED}"
    registry.route("DELETE", path, Answer(202))
    result = haven("repository", "delete", "-n", "reg", "-t", f"samples/hello@{UNTAGGED}", "--yes")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    deleted = registry.last("DELETE", path)
    assert registry.scopes(deleted) == ["repository:samples/hello:delete"]
    assert deleted.headers["host"] == "reg.example.com"
    assert [r.method for r in data(registry)] == ["DELETE"]


def test_delete_by_tag_deletes_the_manifest_the_tag_points_to(
    haven: Haven, registry: FakeHaven
) -> None:
    registry.route("GET", f"{ACR}/_tags/v1", wrapped("tag", TAG))
    registry.route("DELETE", f"/v2/samples/hello/manifests/{TAGGED}", Answer(202))
    result = haven("repository", "delete", "-n", "reg", "--image", "samples/hello:v1", "-y")
    assert result.exit_code == 0, result.stderr
    deleted = registry.last("DELETE", f"/v2/samples/hello/manifests/{TAGGED}")
    assert registry.scopes(deleted) == ["repository:samples/hello:metadata_read,delete"]


def test_delete_without_yes_and_without_a_tty_is_refused(haven: Haven, registry: FakeHaven) -> None:
    registry.route("GET", f"{ACR}/_manifests/{TAGGED}", wrapped("manifest", MANIFESTS[0]))
    for flags in (["-t", f"samples/hello@{TAGGED}"], ["--repository", "samples/hello"]):
        result = haven("repository", "delete", "-n", "reg", *flags)
        assert result.exit_code == 1
        assert one_error_line(result.stderr) == (
            "Unable to prompt for confirmation as no tty available. Use --yes."
        )
    assert not [r for r in registry.requests if r.method == "DELETE"]


def test_delete_asks_azs_question_on_a_terminal(
    haven: Haven, registry: FakeHaven, home: Path
) -> None:
    registry.route("GET", f"{ACR}/_tags/v1", wrapped("tag", TAG))
    registry.route("GET", f"{ACR}/_manifests/{TAGGED}", wrapped("manifest", MANIFESTS[0]))
    registry.route("DELETE", f"/v2/samples/hello/manifests/{TAGGED}", Answer(202))
    registry.route("DELETE", ACR, Answer(202, {"manifestsDeleted": [], "tagsDeleted": []}))
    code, stderr = _run_on_a_tty(
        ["repository", "delete", "-n", "reg", "--image", "samples/hello:v1"], b"n\n", home
    )
    assert code == 1
    assert (
        f"This operation will delete the manifest '{TAGGED}' and all the following images: "
        "'samples/hello:v1', 'samples/hello:latest'.\n"
        "Are you sure you want to continue? (y/n): "
    ) in stderr
    assert not [r for r in registry.requests if r.method == "DELETE"]
    code, stderr = _run_on_a_tty(
        ["repository", "delete", "-n", "reg", "--repository", "samples/hello"], b"y\n", home
    )
    assert code == 0, stderr
    assert (
        "This operation will delete the repository 'samples/hello' and all the images in it.\n"
        "Are you sure you want to continue? (y/n): "
    ) in stderr
    assert registry.scopes(registry.last("DELETE", ACR)) == ["repository:samples/hello:delete"]


def test_delete_of_an_untagged_manifest_names_no_images(haven: Haven, registry: FakeHaven) -> None:
    from haven.cli.dataplane import ImageReference
    from haven.cli.repository import image_confirmation

    assert image_confirmation(ImageReference("a", digest=UNTAGGED), UNTAGGED, []) == (
        f"This operation will delete the manifest '{UNTAGGED}'.\nAre you sure you want to continue?"
    )


def test_untag_deletes_the_tag_only(haven: Haven, registry: FakeHaven) -> None:
    registry.route("DELETE", f"{ACR}/_tags/v1", Answer(202))
    result = haven("repository", "untag", "-n", "reg", "--image", "samples/hello:v1")
    assert (result.exit_code, result.stdout) == (0, "")
    assert registry.scopes(registry.last("DELETE", f"{ACR}/_tags/v1")) == [
        "repository:samples/hello:delete"
    ]


# ------------------------------------------------------------------------ update


@pytest.mark.parametrize(
    ("flags", "path", "key", "value"),
    [
        (["--repository", "samples/hello"], ACR, None, REPOSITORY),
        (["--image", "samples/hello:v1"], f"{ACR}/_tags/v1", "tag", TAG),
        (["-t", f"samples/hello@{TAGGED}"], f"{ACR}/_manifests/{TAGGED}", "manifest", MANIFESTS[0]),
    ],
    ids=["repository", "tag", "digest"],
)
def test_update_patches_the_changeable_attributes(
    haven: Haven,
    registry: FakeHaven,
    flags: list[str],
    path: str,
    key: str | None,
    value: object,
) -> None:
    registry.route("PATCH", path, wrapped(key, value) if key else value)
    result = haven(
        "repository", "update", "-n", "reg", *flags, "--write-enabled", "false",
        "--delete-enabled", "False",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == value
    patched = registry.last("PATCH", path)
    assert patched.json() == {"deleteEnabled": False, "writeEnabled": False}
    assert registry.scopes(patched) == ["repository:samples/hello:metadata_write"]
    haven("repository", "update", "-n", "reg", *flags, "--list-enabled", "true",
          "--read-enabled", "true")  # fmt: skip
    assert registry.last("PATCH", path).json() == {"listEnabled": True, "readEnabled": True}


# ------------------------------------------------------------------------ manifest


def test_manifest_list_metadata(haven: Haven, registry: FakeHaven) -> None:
    registry.route("GET", f"{ACR}/_manifests", wrapped("manifests", MANIFESTS))
    result = haven(
        "manifest", "list-metadata", "-r", "reg", "-n", "samples/hello", "--orderby", "time_desc"
    )
    assert json.loads(result.stdout) == MANIFESTS
    request = registry.last("GET", f"{ACR}/_manifests")
    assert request.query == {"orderby": ["timedesc"], "n": ["100"]}
    assert registry.scopes(request) == ["repository:samples/hello:metadata_read"]


MANIFEST_BYTES = b'{"schemaVersion": 2,  "mediaType": "application/vnd.oci.image.manifest.v1+json"}'


def test_manifest_show_parses_or_prints_the_bytes(haven: Haven, registry: FakeHaven) -> None:
    path = "/v2/samples/hello/manifests/v1"
    registry.route(
        "GET",
        path,
        Answer(
            200,
            raw=MANIFEST_BYTES,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ),
    )
    shown = haven("manifest", "show", "-r", "reg", "-n", "samples/hello:v1")
    assert json.loads(shown.stdout) == json.loads(MANIFEST_BYTES)
    request = registry.last("GET", path)
    accept = request.headers["accept"]
    for media_type in (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ):
        assert media_type in accept
    assert registry.scopes(request) == ["repository:samples/hello:pull"]
    raw = haven("manifest", "show", "-r", "reg", "-n", "samples/hello:v1", "--raw")
    assert raw.stdout_bytes == MANIFEST_BYTES


def test_manifest_list_referrers_resolves_a_tag_and_filters(
    haven: Haven, registry: FakeHaven
) -> None:
    registry.route(
        "HEAD",
        "/v2/samples/hello/manifests/v1",
        Answer(200, headers={"Docker-Content-Digest": TAGGED}),
    )
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": OTHER,
                "size": 10,
                "artifactType": "application/vnd.example.sbom",
            }
        ],
    }
    registry.route("GET", f"/v2/samples/hello/referrers/{TAGGED}", index)
    result = haven(
        "manifest", "list-referrers", "-r", "reg", "-n", "samples/hello:v1",
        "--artifact-type", "application/vnd.example.sbom",
    )  # fmt: skip
    assert json.loads(result.stdout) == index
    assert registry.last("GET", f"/v2/samples/hello/referrers/{TAGGED}").query == {
        "artifactType": ["application/vnd.example.sbom"]
    }
    table = haven(
        "manifest", "list-referrers", "-r", "reg", "-n", f"samples/hello@{TAGGED}", "-o", "table"
    ).stdout.splitlines()
    assert table[0].split() == ["DIGEST", "ARTIFACT", "TYPE", "MEDIA", "TYPE", "SIZE"]
    assert table[2].split()[0] == OTHER


def test_manifest_delete(haven: Haven, registry: FakeHaven) -> None:
    registry.route(
        "HEAD",
        "/v2/samples/hello/manifests/v1",
        Answer(200, headers={"Docker-Content-Digest": TAGGED}),
    )
    registry.route("DELETE", f"/v2/samples/hello/manifests/{TAGGED}", Answer(202))
    refused = haven("manifest", "delete", "-r", "reg", "-n", "samples/hello:v1")
    assert "Use --yes" in one_error_line(refused.stderr)
    done = haven("manifest", "delete", "-r", "reg", "-n", "samples/hello:v1", "--yes")
    assert (done.exit_code, done.stdout) == (0, "")
    assert registry.scopes(registry.last("DELETE", f"/v2/samples/hello/manifests/{TAGGED}")) == [
        "repository:samples/hello:pull,delete"
    ]
    missing = haven("manifest", "delete", "-r", "reg", "-n", "samples/hello:nope", "--yes")
    assert missing.exit_code == 3
    assert one_error_line(missing.stderr) == "The manifest 'samples/hello:nope' does not exist."


# ------------------------------------------------------------------------ show-usage

USAGES = {
    "value": [
        {"name": "Size", "limit": 536870912000, "currentValue": 1024, "unit": "Bytes"},
        {"name": "Webhooks", "limit": 500, "currentValue": 0, "unit": "Count"},
        {"name": "Geo-replications", "limit": -1, "currentValue": 0, "unit": "Count"},
        {"name": "IPRules", "limit": 200, "currentValue": 1, "unit": "Count"},
        {"name": "Tokens", "limit": 50000, "currentValue": 2, "unit": "Count"},
        {"name": "ScopeMaps", "limit": 50000, "currentValue": 3, "unit": "Count"},
    ]
}


def test_show_usage_json_and_azs_table(haven: Haven, logged_in: FakeHaven) -> None:
    logged_in.route("GET", "/api/registries/reg/usages", USAGES)
    assert json.loads(haven("show-usage", "-n", "reg").stdout) == USAGES
    table = haven("show-usage", "-n", "reg", "-o", "table").stdout.splitlines()
    assert table[0].split() == ["NAME", "LIMIT", "CURRENT", "VALUE", "UNIT"]
    assert table[2].split() == ["Size", "536870912000", "1024", "Bytes"]
    assert [line.split()[0] for line in table[2:]] == [
        "Size", "Webhooks", "Geo-replications", "IPRules", "Tokens", "ScopeMaps",
    ]  # fmt: skip
    size = haven(
        "show-usage", "-n", "reg", "--query", "value[?name=='Size'].currentValue", "-o", "tsv"
    )
    assert size.stdout == "1024\n"


# ------------------------------------------------------------------------ error paths

# Each data-plane command, and the request that a 403 or 404 answers.
DATA_COMMANDS: list[tuple[list[str], str, str]] = [
    (["repository", "list", "-n", "reg"], "GET", "/acr/v1/_catalog"),
    (["repository", "show", "-n", "reg", "--repository", "samples/hello"], "GET", ACR),
    (["repository", "show", "-n", "reg", "-t", "samples/hello:v1"], "GET", f"{ACR}/_tags/v1"),
    (
        ["repository", "show-tags", "-n", "reg", "--repository", "samples/hello"],
        "GET",
        f"{ACR}/_tags",
    ),
    (
        ["repository", "show-manifests", "-n", "reg", "--repository", "samples/hello"],
        "GET",
        f"{ACR}/_manifests",
    ),
    (
        ["repository", "delete", "-n", "reg", "-t", f"samples/hello@{TAGGED}", "--yes"],
        "DELETE",
        f"/v2/samples/hello/manifests/{TAGGED}",
    ),
    (["repository", "delete", "-n", "reg", "--repository", "samples/hello", "-y"], "DELETE", ACR),
    (["repository", "untag", "-n", "reg", "-t", "samples/hello:v1"], "DELETE", f"{ACR}/_tags/v1"),
    (
        [
            "repository",
            "update",
            "-n",
            "reg",
            "--repository",
            "samples/hello",
            "--write-enabled",
            "false",
        ],
        "PATCH",
        ACR,
    ),
    (
        ["manifest", "list-metadata", "-r", "reg", "-n", "samples/hello"],
        "GET",
        f"{ACR}/_manifests",
    ),
    (
        ["manifest", "show", "-r", "reg", "-n", "samples/hello:v1"],
        "GET",
        "/v2/samples/hello/manifests/v1",
    ),
    (
        ["manifest", "list-referrers", "-r", "reg", "-n", f"samples/hello@{TAGGED}"],
        "GET",
        f"/v2/samples/hello/referrers/{TAGGED}",
    ),
    (
        ["manifest", "delete", "-r", "reg", "-n", f"samples/hello@{TAGGED}", "--yes"],
        "DELETE",
        f"/v2/samples/hello/manifests/{TAGGED}",
    ),
]
DATA_IDS = [" ".join(arguments[:2] + arguments[4:5]) for arguments, _, _ in DATA_COMMANDS]
ALL_COMMANDS = [*[arguments for arguments, _, _ in DATA_COMMANDS], ["show-usage", "-n", "reg"]]


@pytest.mark.parametrize(("arguments", "method", "path"), DATA_COMMANDS, ids=DATA_IDS)
def test_a_denial_prints_the_registrys_message(
    haven: Haven, registry: FakeHaven, arguments: list[str], method: str, path: str
) -> None:
    message = "access denied: the caller lacks metadata/read on samples/hello"
    registry.route(method, path, oci_error(403, "DENIED", message))
    result = haven(*arguments)
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == message
    assert result.stdout == ""


@pytest.mark.parametrize(("arguments", "method", "path"), DATA_COMMANDS, ids=DATA_IDS)
def test_an_unknown_repository_exits_with_code_3(
    haven: Haven, registry: FakeHaven, arguments: list[str], method: str, path: str
) -> None:
    registry.route(method, path, oci_error(404, "NAME_UNKNOWN", "repository name not known"))
    result = haven(*arguments)
    assert result.exit_code == 3
    assert one_error_line(result.stderr) == "repository name not known"


@pytest.mark.parametrize("arguments", ALL_COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_an_unknown_registry_exits_with_code_3(
    haven: Haven, logged_in: FakeHaven, arguments: list[str]
) -> None:
    arguments = [("nosuch" if word == "reg" else word) for word in arguments]
    result = haven(*arguments)
    assert result.exit_code == 3
    assert one_error_line(result.stderr) == "no route GET /api/registries/nosuch" + (
        "/usages" if arguments[0] == "show-usage" else ""
    )


@pytest.mark.parametrize("arguments", ALL_COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_without_login_every_command_asks_to_log_in(
    haven: Haven, fake: FakeHaven, arguments: list[str]
) -> None:
    result = haven(*arguments)
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == "Please run 'haven account login' to set up an account."
    assert fake.requests == []


@pytest.mark.parametrize("arguments", ALL_COMMANDS, ids=lambda a: " ".join(a[:3]))
def test_a_server_that_is_down_is_named(
    haven: Haven, registry: FakeHaven, arguments: list[str]
) -> None:
    url = registry.url
    registry.stop()
    result = haven(*arguments)
    assert result.exit_code == 1
    assert one_error_line(result.stderr).startswith(f"Cannot connect to {url}: ")


def test_a_refused_registry_token_is_reported(haven: Haven, registry: FakeHaven) -> None:
    registry.route("POST", "/oauth2/exchange", error(403, "FORBIDDEN", "no role on registry reg"))
    result = haven("repository", "list", "-n", "reg")
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == "no role on registry reg"


MALFORMED: list[tuple[list[str], str]] = [
    (["repository", "list"], "Missing option '--name' / '-n'"),
    (["repository", "list", "-n", "reg", "--top", "0"], "Invalid value for '--top'"),
    (["repository", "show", "-n", "reg"], "Usage error: --image IMAGE | --repository REPOSITORY"),
    (
        ["repository", "show", "-n", "reg", "--repository", "a", "--image", "a:b"],
        "Usage error: --image IMAGE | --repository REPOSITORY",
    ),
    (["repository", "show", "-n", "reg", "-t", "a:"], "has an empty tag"),
    (["repository", "show", "-n", "reg", "-t", "a@sha256"], "is not a digest"),
    (["repository", "show", "-n", "reg", "-t", ":v1"], "names no repository"),
    (["repository", "show-tags", "-n", "reg"], "Missing option '--repository'"),
    (
        ["repository", "show-tags", "-n", "reg", "--repository", "a", "--orderby", "name"],
        "Invalid value for '--orderby'",
    ),
    (["repository", "show-manifests", "-n", "reg"], "Missing option '--repository'"),
    (["repository", "delete", "-n", "reg", "--yes"], "Usage error: --image IMAGE"),
    (["repository", "untag", "-n", "reg"], "Missing option '--image' / '-t'"),
    (["repository", "untag", "-n", "reg", "-t", f"a@{TAGGED}"], "must be 'repository:tag'"),
    (["repository", "update", "-n", "reg", "--repository", "a"], "Nothing to update"),
    (
        ["repository", "update", "-n", "reg", "--repository", "a", "--write-enabled", "no"],
        "Invalid value for '--write-enabled'",
    ),
    (["manifest", "list-metadata", "-r", "reg"], "Missing option '--name' / '-n'"),
    (["manifest", "show", "-n", "a:b"], "Missing option '--registry' / '-r'"),
    (["manifest", "show", "-r", "reg", "-n", "a@md5"], "is not a digest"),
    (["manifest", "list-referrers", "-r", "reg"], "Missing option '--name' / '-n'"),
    (["show-usage"], "Missing option '--name' / '-n'"),
    (["repository", "shwo"], "No such command 'shwo'"),
]


@pytest.mark.parametrize(
    ("arguments", "message"), MALFORMED, ids=[" ".join(a) for a, _ in MALFORMED]
)
def test_malformed_arguments_are_one_clear_error_with_exit_code_2(
    haven: Haven, registry: FakeHaven, arguments: list[str], message: str
) -> None:
    before = len(registry.requests)
    result = haven(*arguments)
    assert result.exit_code == 2, result.stderr
    assert message in one_error_line(result.stderr)
    assert result.stdout == ""
    assert len(registry.requests) == before, "nothing may be sent for malformed arguments"


# ------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_registry(
    haven: Haven, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHaven]:
    """An https fake the CLI signed in to trusting its CA through REQUESTS_CA_BUNDLE."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    for fake in running(context):
        fake.route("GET", "/api/me", {"id": "id-owner", "name": OWNER, "kind": "user"})
        fake.serve_registry("reg", "reg.example.com")
        fake.route("GET", "/acr/v1/_catalog", {"repositories": ["tls"]})
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
        login = haven("account", "login", "--server", fake.url, "-u", OWNER, "-p", OWNER_PASSWORD)
        assert login.exit_code == 0, login.stderr
        yield fake


def test_https_data_plane_with_a_trusted_ca(haven: Haven, tls_registry: FakeHaven) -> None:
    result = haven("repository", "list", "-n", "reg")
    assert json.loads(result.stdout) == ["tls"], result.stderr


def test_https_data_plane_with_an_untrusted_certificate_says_how_to_trust_it(
    haven: Haven, tls_registry: FakeHaven, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    result = haven("repository", "list", "-n", "reg")
    assert result.exit_code == 1
    message = one_error_line(result.stderr)
    assert message.startswith(f"Cannot verify the TLS certificate of {tls_registry.url}")
    assert "--ca-file" in message and "REQUESTS_CA_BUNDLE" in message


def test_a_login_server_as_the_name_needs_no_management_rights(
    haven: Haven, registry: FakeHaven
) -> None:
    registry.route("GET", "/api/registries/reg", error(403, "Forbidden", "bob may not read reg"))
    registry.route("GET", "/acr/v1/_catalog", {"repositories": ["a"]})
    by_name = haven("repository", "list", "-n", "reg")
    assert by_name.exit_code == 1
    assert one_error_line(by_name.stderr) == (
        "bob may not read reg. Without the right to read the registry, name it by its login "
        "server instead: -n <login server>."
    )
    before = len(registry.api_requests())
    result = haven("repository", "list", "-n", "reg.example.com")
    assert json.loads(result.stdout) == ["a"], result.stderr
    assert len(registry.api_requests()) == before, "no management call"
    assert registry.last("POST", "/oauth2/exchange").form()["service"] == "reg.example.com"
    assert data(registry)[-1].headers["host"] == "reg.example.com"
