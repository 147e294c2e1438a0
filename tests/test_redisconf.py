"""redis.conf edits change one directive's value and keep every other byte."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
import redis

from bot.errors import UsageError
from bot.redisconf import (
    diff_lines,
    directive_lines,
    get_directive,
    set_directive,
    set_directives,
)
from tests.redisserver import free_port, redis_server_available

RUNBOOK = "maxmemory 1024mb\nmaxmemory-policy allkeys-lru\nappendonly yes\nappendfsync everysec"
COMMENTED = (
    "# Redis session store\n"
    "\n"
    "bind 0.0.0.0\n"
    "# maxmemory 2gb   <- commented out, not a directive\n"
    "maxmemory 512mb\n"
    "maxmemory-policy allkeys-lru\n"
    "\n"
    "appendonly yes\n"
)


def test_reads_the_runbook_config() -> None:
    assert get_directive(RUNBOOK, "maxmemory") == "1024mb"
    assert get_directive(RUNBOOK, "maxmemory-policy") == "allkeys-lru"
    assert get_directive(RUNBOOK, "appendfsync") == "everysec"
    assert get_directive(RUNBOOK, "activedefrag") is None


def test_changes_one_directive_of_the_runbook_config_only() -> None:
    after = set_directive(RUNBOOK, "maxmemory-policy", "volatile-lru")
    assert (
        after
        == "maxmemory 1024mb\nmaxmemory-policy volatile-lru\nappendonly yes\nappendfsync everysec"
    )


def test_defrag_edit_keeps_maxmemory_and_appendonly_unlike_the_runbook() -> None:
    # The runbook's patch rewrote the file with maxmemory 512mb and no appendonly.
    after = set_directives(
        RUNBOOK,
        {"activedefrag": "yes", "active-defrag-cycle-min": "1", "active-defrag-cycle-max": "25"},
    )
    assert (
        after
        == RUNBOOK + "\nactivedefrag yes\nactive-defrag-cycle-min 1\nactive-defrag-cycle-max 25"
    )
    assert get_directive(after, "maxmemory") == "1024mb"
    assert get_directive(after, "appendonly") == "yes"


def test_comments_blank_lines_and_trailing_newline_survive() -> None:
    after = set_directive(COMMENTED, "maxmemory", "1gb")
    assert after == COMMENTED.replace("maxmemory 512mb\n", "maxmemory 1gb\n")
    assert after.endswith("appendonly yes\n")
    assert "# maxmemory 2gb   <- commented out" in after


def test_appending_keeps_the_files_trailing_newline_convention() -> None:
    assert set_directive("port 6379\n", "maxmemory", "1gb") == "port 6379\nmaxmemory 1gb\n"
    assert set_directive("port 6379", "maxmemory", "1gb") == "port 6379\nmaxmemory 1gb"
    assert set_directive("", "maxmemory", "1gb") == "maxmemory 1gb\n"


def test_crlf_line_endings_are_kept() -> None:
    text = "port 6379\r\nmaxmemory 1mb\r\n"
    assert set_directive(text, "maxmemory", "2mb") == "port 6379\r\nmaxmemory 2mb\r\n"
    assert set_directive(text, "activedefrag", "yes") == text + "activedefrag yes\r\n"


def test_names_are_case_insensitive_and_keep_their_spelling() -> None:
    text = "MaxMemory 512mb\n"
    assert get_directive(text, "maxmemory") == "512mb"
    assert get_directive(text, "MAXMEMORY") == "512mb"
    assert set_directive(text, "maxmemory", "1gb") == "MaxMemory 1gb\n"


def test_indentation_spacing_and_trailing_spaces_are_kept() -> None:
    text = "  maxmemory\t  512mb   \nport 6379\n"
    assert set_directive(text, "maxmemory", "1gb") == "  maxmemory\t  1gb   \nport 6379\n"


def test_last_occurrence_wins_and_earlier_ones_stay_untouched() -> None:
    text = "maxmemory 100mb\nport 6379\nmaxmemory 200mb\nappendonly no\n"
    assert get_directive(text, "maxmemory") == "200mb"
    assert directive_lines(text, "maxmemory") == [1, 3]
    after = set_directive(text, "maxmemory", "1gb")
    assert after == "maxmemory 100mb\nport 6379\nmaxmemory 1gb\nappendonly no\n"


def test_quoted_values_with_spaces_round_trip() -> None:
    text = 'save "3600 1"\nport 6379\n'
    assert get_directive(text, "save") == "3600 1"
    assert set_directive(text, "save", "3600 1") == text
    assert set_directive(text, "save", "900 1 300 10") == 'save "900 1 300 10"\nport 6379\n'
    assert get_directive(set_directive(text, "save", "900 1 300 10"), "save") == "900 1 300 10"


def test_unquoted_multi_argument_values_read_like_config_get() -> None:
    text = "save 3600 1 300 100\n"
    assert get_directive(text, "save") == "3600 1 300 100"
    assert set_directive(text, "save", "60 10000") == "save 60 10000\n"


def test_empty_and_special_values_are_quoted() -> None:
    assert set_directive("", "save", "") == 'save ""\n'
    assert get_directive('save ""\n', "save") == ""
    assert set_directive("", "masterauth", 'pa"ss') == 'masterauth "pa\\"ss"\n'
    assert get_directive('masterauth "pa\\"ss"\n', "masterauth") == 'pa"ss'
    single = "logfile '/var/log/my redis.log'\n"
    assert get_directive(single, "logfile") == "/var/log/my redis.log"
    assert set_directive(single, "logfile", "/tmp/r.log") == "logfile '/tmp/r.log'\n"


def test_escapes_in_double_quotes_are_decoded() -> None:
    assert get_directive('requirepass "a\\x41\\tb"\n', "requirepass") == "aA\tb"


def test_cumulative_directives_read_like_config_get() -> None:
    assert get_directive("save 3600 1\nport 1\nsave 300 100\n", "save") == "3600 1 300 100"
    assert get_directive('save 3600 1\nsave ""\nsave 60 5\n', "save") == "60 5"
    assert get_directive('save 3600 1\nsave ""\n', "save") == ""


def test_cumulative_directives_are_not_edited_when_repeated() -> None:
    text = "save 3600 1\nsave 300 100\n"
    with pytest.raises(UsageError, match="2 'save' lines"):
        set_directive(text, "save", "60 1")
    assert set_directive("save 3600 1\n", "save", "60 1") == "save 60 1\n"


def test_a_malformed_line_is_not_taken_for_a_directive() -> None:
    text = 'maxmemory "512mb\nmaxmemory-policy noeviction\n'
    assert get_directive(text, "maxmemory") is None
    assert get_directive(text, "maxmemory-policy") == "noeviction"


def test_bad_names_and_multi_line_values_are_refused() -> None:
    with pytest.raises(UsageError, match="directive name"):
        set_directive(RUNBOOK, "max memory", "1gb")
    with pytest.raises(UsageError, match="single line"):
        set_directive(RUNBOOK, "maxmemory", "1gb\nappendonly no")
    with pytest.raises(UsageError, match="directive name"):
        get_directive(RUNBOOK, "#maxmemory")


def test_setting_the_same_value_changes_nothing() -> None:
    assert set_directive(COMMENTED, "maxmemory", "512mb") == COMMENTED
    assert diff_lines(COMMENTED, COMMENTED) == []


def test_diff_lines_shows_only_what_changed() -> None:
    after = set_directives(COMMENTED, {"maxmemory": "1gb", "activedefrag": "yes"})
    assert diff_lines(COMMENTED, after) == [
        "@@ line 5",
        "- maxmemory 512mb",
        "+ maxmemory 1gb",
        "@@ line 9",
        "+ activedefrag yes",
    ]


def test_real_redis_reads_what_we_write(tmp_path: Path) -> None:
    """redis-server itself parses our edits as ``get_directive`` does (quotes, spaces, case)."""
    if not redis_server_available():
        pytest.fail("redis-server is not installed; the suite needs it")
    text = set_directives(
        "# edited by the tests\nMAXMEMORY 10mb\nmaxmemory-policy allkeys-lru\nsave 3600 1\n",
        {
            "maxmemory": "64mb",
            "maxmemory-policy": "volatile-lru",
            "save": "900 1 300 10",
            "masterauth": 'pa"ss word',
            "activedefrag": "no",
        },
    )
    conf = tmp_path / "redis.conf"
    conf.write_text(text + f"dir {tmp_path}\nappendonly no\n")
    port = free_port()
    args = ["redis-server", str(conf), "--port", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, decode_responses=True, socket_timeout=5)
    try:
        _wait_for_ping(client, proc)
        for name in ("maxmemory-policy", "save", "masterauth", "activedefrag"):
            assert client.config_get(name)[name] == get_directive(text, name), name
        assert client.config_get("maxmemory")["maxmemory"] == str(64 * 1024 * 1024)
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for_ping(client: redis.Redis, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        assert proc.poll() is None, "redis-server refused the edited redis.conf"
        try:
            client.ping()
            return
        except redis.ConnectionError:
            threading.Event().wait(0.05)
    pytest.fail("redis-server did not start")
