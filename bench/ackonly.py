"""The baseline of bench/slack_ack.py: a Bolt app that only acks, served as ``serve`` is.

    .venv/bin/python bench/ackonly.py   (env: PORT, SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN,
                                         SLACK_API_URL)

Same process layout as ``redis-mem serve`` in HTTP mode: a sync Bolt ``App``
(``process_before_response=False``) behind our Starlette app (``bot.web``, with its
request guard) under uvicorn (``bot.serve.run_http``). Its listeners call ``ack()``
and nothing else, so its latency is what Bolt, Starlette and uvicorn cost by themselves.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from slack_bolt import Ack, App
from slack_sdk import WebClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.serve import run_http
from bot.web import create_web_app


def ack_only_app() -> App:
    """A Bolt app whose slash command and every button only ack."""
    client = WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = App(
        client=client,
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        process_before_response=False,
    )

    @app.command("/redis-mem")
    def on_command(ack: Ack, command: dict[str, Any]) -> None:
        ack(text="Checking…", response_type="ephemeral")

    @app.action(re.compile(".*"))
    def on_click(ack: Ack) -> None:
        ack()

    return app


if __name__ == "__main__":
    web = create_web_app(registry=CollectorRegistry(), bolt_app=ack_only_app())
    run_http(web, host="127.0.0.1", port=int(os.environ["PORT"]))
