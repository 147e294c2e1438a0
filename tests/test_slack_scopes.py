"""The Slack app manifests declare exactly the bot scopes the code needs.

Two checks of one table (``BOT_SCOPES``: Web API method -> the bot scopes Slack's method
page lists as required):

- at the end of every test session (``tests/conftest.py: pytest_sessionfinish``), each
  method the fake Slack served, in any xdist worker, must be in the table and need only
  scopes ``deploy/slack-app-manifest.yaml`` declares (``recorded_problems``);
- here, the manifests' scopes must be exactly the scopes of the methods ``bot/`` can call
  (a grep for slack_sdk ``WebClient`` methods, plus what Bolt calls on its own), so a
  scope nobody uses fails too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient
from slack_sdk.web.base_client import BaseClient

from bot.slack.commands import SUBCOMMANDS
from tests.fakeslack import METHODS_DIR_ENV, FakeSlack

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "deploy" / "slack-app-manifest.yaml"
SOCKET_MANIFEST = ROOT / "deploy" / "slack-app-manifest.socket.yaml"
EVENTS_PATH = "/slack/events"  # bot/web.py's route for commands and interactivity

# Web API method -> the bot-token scopes it needs (each method's page on docs.slack.dev).
BOT_SCOPES: dict[str, frozenset[str]] = {
    "auth.test": frozenset(),  # Bolt checks the token at start-up
    "chat.postMessage": frozenset({"chat:write"}),  # also DMs (a user id as channel)
    "chat.update": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "views.open": frozenset(),  # a trigger_id is the permission
    "usergroups.users.list": frozenset({"usergroups:read"}),
    "files.getUploadURLExternal": frozenset({"files:write"}),  # files_upload_v2, step 1
    "files.completeUploadExternal": frozenset({"files:write"}),  # and step 3
}
# Called with the app-level token (xapp-), whose scope is granted where the token is made,
# never in a manifest: Socket Mode's websocket URL.
APP_TOKEN_SCOPES = {"apps.connections.open": frozenset({"connections:write"})}
# What the slash command itself needs (no Web API method).
COMMAND_SCOPE = "commands"
# Requests the fake serves that are not Web API methods: response_url posts (Bolt's
# respond(), no token) and files_upload_v2's step 2 (the upload URL Slack handed out).
NOT_WEB_API = re.compile(r"^(response_url/.*|upload)$")
# slack_sdk calls that are several Web API methods, or none by their own name.
COMPOSITE = {"files_upload_v2": ("files.getUploadURLExternal", "files.completeUploadExternal")}
# Methods Bolt calls on the code's behalf: App(token=...) verifies it; Socket Mode dials.
BOLT_CALLS = ("auth.test", "apps.connections.open")
SAY = re.compile(r"\bsay\(")  # Bolt's say(): chat.postMessage in the request's channel


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str]:
    """The bot scopes ``path`` declares."""
    manifest = yaml.safe_load(path.read_text())
    return frozenset(manifest["oauth_config"]["scopes"]["bot"])


def recorded_problems(directory: Path, manifest: Path = MANIFEST) -> list[str]:
    """One line per method the fakes noted in ``directory`` that the table does not know or
    that needs a scope ``manifest`` lacks (empty: all is well)."""
    declared = manifest_scopes(manifest)
    first_caller: dict[str, str] = {}
    for noted in sorted(directory.glob("*.tsv")):
        for line in noted.read_text(encoding="utf-8").splitlines():
            method, _, test = line.partition("\t")
            first_caller.setdefault(method, test)
    problems = []
    for method, test in sorted(first_caller.items()):
        if NOT_WEB_API.match(method) or method in APP_TOKEN_SCOPES:
            continue
        if method not in BOT_SCOPES:
            problems.append(
                f"Slack method {method} (called in {test}) is not in tests/test_slack_scopes.py's "
                "BOT_SCOPES: add it with the scopes its docs page lists"
            )
        elif missing := BOT_SCOPES[method] - declared:
            problems.append(
                f"Slack method {method} (called in {test}) needs {', '.join(sorted(missing))}, "
                f"which {manifest.name} does not declare"
            )
    return problems


def code_methods() -> set[str]:
    """Every Web API method ``bot/`` can make Slack answer."""
    client_methods = {n for n in dir(WebClient) if not n.startswith("_")} - set(dir(BaseClient))
    source = "\n".join(p.read_text() for p in sorted((ROOT / "bot").rglob("*.py")))
    called = set(re.findall(r"\.([A-Za-z_0-9]+)\(", source)) & client_methods
    methods = set(BOLT_CALLS)
    for name in called:
        methods.update(COMPOSITE.get(name, (name.replace("_", "."),)))
    if SAY.search(source):
        methods.add("chat.postMessage")
    return methods


def _manifest(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_every_method_the_code_calls_is_in_the_table() -> None:
    unknown = code_methods() - set(BOT_SCOPES) - set(APP_TOKEN_SCOPES)
    assert not unknown, f"add these to BOT_SCOPES with their scopes: {sorted(unknown)}"


def test_the_manifest_scopes_are_exactly_what_the_code_needs() -> None:
    needed = {COMMAND_SCOPE}.union(*(BOT_SCOPES.get(m, frozenset()) for m in code_methods()))
    assert manifest_scopes() == needed
    assert manifest_scopes(SOCKET_MANIFEST) == needed


def test_the_table_has_no_method_the_code_cannot_call() -> None:
    # A stale row would keep a scope "needed" that nothing uses any more.
    assert set(BOT_SCOPES) <= code_methods()


def test_the_http_manifest_points_commands_and_clicks_at_slack_events() -> None:
    manifest = _manifest(MANIFEST)
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/redis-mem"
    assert re.fullmatch(rf"https://[^/]+{EVENTS_PATH}", command["url"])
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity == {"is_enabled": True, "request_url": command["url"]}
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["org_deploy_enabled"] is False


def test_the_socket_manifest_has_no_urls_and_the_same_app() -> None:
    http, socket = _manifest(MANIFEST), _manifest(SOCKET_MANIFEST)
    assert "url" not in yaml.safe_dump(socket).replace("usage_hint", "")
    assert socket["settings"]["socket_mode_enabled"] is True
    assert socket["settings"]["interactivity"] == {"is_enabled": True}
    [command] = socket["features"]["slash_commands"]
    assert {**command, "url": http["features"]["slash_commands"][0]["url"]} == (
        http["features"]["slash_commands"][0]
    )
    for key in ("display_information", "oauth_config"):
        assert socket[key] == http[key]


def test_the_usage_hint_names_every_subcommand() -> None:
    for path in (MANIFEST, SOCKET_MANIFEST):
        [command] = _manifest(path)["features"]["slash_commands"]
        hint = command["usage_hint"]
        named = set(re.findall(r"(?:^|\| )([a-z]+)", hint))
        assert named == {sub.name for sub in SUBCOMMANDS}, path.name


def test_no_event_subscriptions_because_no_listener_wants_events() -> None:
    # Bolt listeners registered with app.event()/app.message() would need them (and scopes).
    source = "\n".join(p.read_text() for p in sorted((ROOT / "bot").rglob("*.py")))
    assert not re.search(r"\.(event|message)\(", source)
    for path in (MANIFEST, SOCKET_MANIFEST):
        assert "event_subscriptions" not in _manifest(path)["settings"], path.name


def test_this_session_records_the_fakes_methods() -> None:
    # The session-end check is only as good as the recording: it must be on in every worker.
    assert os.environ.get(METHODS_DIR_ENV), "tests/conftest.py did not set the directory"
    assert Path(os.environ[METHODS_DIR_ENV]).is_dir()


def test_an_unknown_method_or_a_missing_scope_is_one_line_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the session-end hook reads, written by a real fake over HTTP (in its own directory).
    noted = tmp_path / "noted"
    noted.mkdir()
    monkeypatch.setenv(METHODS_DIR_ENV, str(noted))
    fake = FakeSlack().start()
    try:
        client = WebClient(token="xoxb-test", base_url=fake.api_url)
        client.chat_postMessage(channel="C1", text="hi")
        client.files_getUploadURLExternal(filename="chart.png", length=3)
        client.api_call("conversations.history", params={"channel": "C1"})
    finally:
        fake.stop()
    monkeypatch.undo()
    assert recorded_problems(noted) == [
        "Slack method conversations.history (called in tests/test_slack_scopes.py::"
        "test_an_unknown_method_or_a_missing_scope_is_one_line_each) is not in "
        "tests/test_slack_scopes.py's BOT_SCOPES: add it with the scopes its docs page lists"
    ]
    narrower = tmp_path / "manifest.yaml"
    narrower.write_text(MANIFEST.read_text().replace("      - files:write\n", ""))
    assert [
        p.split(" (")[0] + " " + p.split(") ")[1] for p in recorded_problems(noted, narrower)
    ] == [
        "Slack method conversations.history is not in tests/test_slack_scopes.py's BOT_SCOPES: "
        "add it with the scopes its docs page lists",
        "Slack method files.getUploadURLExternal needs files:write, which manifest.yaml does "
        "not declare",
    ]
