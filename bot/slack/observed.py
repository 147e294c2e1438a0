"""A WebClient that tells an observer about every failed Web API call, once, after its retries.

Every Web API method of ``slack_sdk.WebClient`` (``chat_postMessage``, ``files_upload_v2``'s
two calls, Bolt's ``auth.test``...) goes through ``api_call``, and the client's retry
handlers (bot/slack/retry.py) run inside it: an exception out of ``api_call`` is a call
that failed for good. Counting there sees each failed call exactly once, whether its
client retries (the alert and listener clients) or not (``without_retries`` copies).

The labels are bounded: the method is the Web API name our code calls, the error one of
Slack's documented codes (others become ``other``), ``http_<status>`` or ``connection``.
"""

from __future__ import annotations

import re
from http.client import HTTPException
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

OTHER = "other"
CONNECTION = "connection"  # no answer: refused, reset, timed out
METHOD = re.compile(r"[a-z][A-Za-z]*(\.[a-z][A-Za-z]*){1,3}")

# Slack's error codes for the methods the bot calls (chat.*, usergroups.users.list,
# files.*, views.open, auth.test, apps.connections.open) and the generic ones every
# method may answer. Anything else is counted as ``other``: a label never holds free text.
KNOWN_ERRORS = frozenset(
    {
        "access_denied",
        "account_inactive",
        "as_user_not_supported",
        "cant_update_message",
        "channel_not_found",
        "deprecated_endpoint",
        "duplicate_message_not_found",
        "edit_window_closed",
        "ekm_access_denied",
        "enterprise_is_restricted",
        "expired_trigger_id",
        "fatal_error",
        "file_not_found",
        "file_upload_size_restricted",
        "file_uploads_disabled",
        "file_uploads_except_images_disabled",
        "internal_error",
        "invalid_arguments",
        "invalid_array_arg",
        "invalid_auth",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_channel",
        "invalid_charset",
        "invalid_form_data",
        "invalid_json",
        "invalid_metadata_format",
        "invalid_post_type",
        "invalid_trigger_id",
        "invalid_usergroup",
        "is_archived",
        "json_not_object",
        "message_limit_exceeded",
        "message_not_found",
        "method_deprecated",
        "missing_post_type",
        "missing_scope",
        "msg_too_long",
        "no_permission",
        "no_such_subteam",
        "no_text",
        "not_allowed_token_type",
        "not_authed",
        "not_in_channel",
        "org_login_required",
        "plan_upgrade_required",
        "posting_to_general_channel_denied",
        "ratelimited",
        "rate_limited",
        "request_timeout",
        "restricted_action",
        "restricted_action_non_threadable_channel",
        "restricted_action_read_only_channel",
        "restricted_action_thread_locked",
        "restricted_action_thread_only_channel",
        "service_unavailable",
        "team_access_not_granted",
        "team_added_to_org",
        "team_not_found",
        "token_expired",
        "token_revoked",
        "too_many_attachments",
        "two_factor_setup_required",
        "user_not_found",
        "users_not_found",
        "view_too_large",
    }
)


class SlackCallObserver(Protocol):
    """Told of each Web API call that failed (the metrics adapter counts them)."""

    def slack_call_failed(self, method: str, error: str) -> None:
        """``method`` (a Web API name or ``other``) failed with ``error`` (a bounded code)."""
        ...


class ObservedWebClient(WebClient):
    """``WebClient`` whose failed calls (after retries) are reported to ``observer``."""

    def __init__(self, *, observer: SlackCallObserver, **kwargs: Any) -> None:
        """``kwargs``: WebClient's own (token, base_url, timeout, retry_handlers...)."""
        super().__init__(**kwargs)
        self.observer = observer

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:
        """WebClient's call; a failure is reported, then raised unchanged."""
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as err:
            self.observer.slack_call_failed(method_label(api_method), error_label(err))
            raise
        except (OSError, HTTPException):
            self.observer.slack_call_failed(method_label(api_method), CONNECTION)
            raise
        except Exception:  # a malformed request or answer: still a failed call
            self.observer.slack_call_failed(method_label(api_method), OTHER)
            raise


def method_label(api_method: str) -> str:
    """The Web API method name (our code's, a fixed set), or ``other`` if it looks odd."""
    return api_method if len(api_method) <= 64 and METHOD.fullmatch(api_method) else OTHER


def error_label(err: SlackApiError) -> str:
    """Slack's error code when known; else ``http_<status>`` for a non-200 answer."""
    response = err.response
    status = int(response.status_code)
    code = response.data.get("error") if isinstance(response.data, dict) else None
    if status < 500 and isinstance(code, str) and code in KNOWN_ERRORS:
        return code
    if status != 200 and 100 <= status <= 599:
        return f"http_{status}"
    return OTHER
