"""Building and serving the app: configuration problems are one line, before listening."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from slack_bolt import App

from bot.audit.entry import AuditEntry
from bot.config import Settings, Target
from bot.errors import ConfigError
from bot.serve import serve
from bot.slack.app import api_base_url
from bot.wiring import diagnosis_service
from bot.wiring_serve import run_bot
from tests.fakeslack import FakeSlack
from tests.redisserver import free_port
from tests.slack_app_support import bolt_app

TOKEN = "xoxb-secret-token-value"


class ListSink:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


def settings(**values: object) -> Settings:
    defaults: dict[str, object] = {
        "slack_bot_token": TOKEN,
        "slack_signing_secret": "s",
        "slack_app_token": None,
        "slack_api_url": None,
    }
    return Settings(**{**defaults, **values})  # type: ignore[arg-type]


def build(config: Settings) -> App:
    targets = {"prod": Target(name="prod", redis_url="redis://127.0.0.1:1/0")}
    return bolt_app(config, diagnosis=diagnosis_service(config, targets), audit=ListSink())


def test_build_checks_the_token_with_auth_test(fake_slack: FakeSlack) -> None:
    app = build(settings(slack_api_url=fake_slack.api_url.rstrip("/")))

    assert isinstance(app, App)
    [call] = fake_slack.calls_to("auth.test")
    assert call.headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"slack_bot_token": None, "slack_signing_secret": None},
            "Slack is not configured: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET",
        ),
        ({"slack_signing_secret": None}, "Slack is not configured: set SLACK_SIGNING_SECRET"),
    ],
)
def test_missing_credentials_are_one_line(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(settings(**values))
    assert err.value.message == message
    with pytest.raises(ConfigError, match=r"^Slack is not configured"):
        serve(settings=settings(**values), app=None, registry=CollectorRegistry())  # type: ignore[arg-type]


def test_socket_mode_needs_no_signing_secret(fake_slack: FakeSlack) -> None:
    config = settings(
        slack_signing_secret=None, slack_app_token="xapp-1", slack_api_url=fake_slack.api_url
    )
    assert isinstance(build(config), App)


def test_rejected_token_is_one_line(fake_slack: FakeSlack) -> None:
    fake_slack.fail("auth.test", "invalid_auth")

    with pytest.raises(ConfigError) as err:
        build(settings(slack_api_url=fake_slack.api_url))

    assert err.value.message == "Slack did not accept SLACK_BOT_TOKEN (auth.test failed)"


def test_unreachable_slack_is_one_line_without_the_token() -> None:
    with pytest.raises(ConfigError) as err:
        build(settings(slack_api_url=f"http://127.0.0.1:{free_port()}/api"))

    assert err.value.message.startswith("cannot reach the Slack API to check the bot token")
    assert TOKEN not in err.value.message and "\n" not in err.value.message


def test_api_base_url_gets_the_slash_slack_sdk_needs() -> None:
    assert api_base_url("http://x/api") == "http://x/api/"
    assert api_base_url(None) == "https://slack.com/api/"


def test_run_bot_refuses_missing_credentials_before_touching_the_database() -> None:
    with pytest.raises(ConfigError, match=r"^Slack is not configured: set SLACK_BOT_TOKEN$"):
        run_bot(settings(slack_bot_token=None, database_url="sqlite:////nonexistent/dir/x.db"))


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("0 9 * *", "must be five cron fields"),
        ("0 25 * * *", "25"),
        ("0 9 * * 8", "weekday '8'"),
    ],
)
def test_run_bot_refuses_a_bad_report_schedule_before_touching_the_database(
    schedule: str, says: str
) -> None:
    with pytest.raises(ConfigError) as err:
        run_bot(settings(report_schedule=schedule, database_url="sqlite:////nonexistent/dir/x.db"))
    assert err.value.message.startswith("invalid configuration: REDIS_MEM_REPORT_SCHEDULE: ")
    assert says in err.value.message and "\n" not in err.value.message


def test_a_bad_time_zone_is_one_line_at_start_up() -> None:
    with pytest.raises(ValidationError) as err:
        settings(timezone="Mars/Olympus")
    assert "unknown time zone 'Mars/Olympus'" in str(err.value)


def test_a_busy_port_is_one_line(fake_slack: FakeSlack) -> None:
    config = settings(slack_api_url=fake_slack.api_url, port=free_port())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", config.port))
        busy.listen()
        with pytest.raises(ConfigError) as err:
            serve(
                settings=config, app=build(config), registry=CollectorRegistry(), host="127.0.0.1"
            )
    assert (
        str(err.value) == f"cannot listen on 127.0.0.1:{config.port} (port in use or not allowed)"
    )


def test_a_rejected_app_token_is_one_line(fake_slack: FakeSlack) -> None:
    # The fake answers apps.connections.open with not_allowed_token_type when it has no socket.
    config = settings(slack_api_url=fake_slack.api_url, slack_app_token="xapp-rejected")
    with pytest.raises(ConfigError) as err:
        serve(settings=config, app=build(config), registry=CollectorRegistry())
    assert str(err.value) == (
        "Slack did not accept SLACK_APP_TOKEN (apps.connections.open: not_allowed_token_type)"
    )
