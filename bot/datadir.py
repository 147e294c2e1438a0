"""Where redis-mem keeps its audit database when ``DATABASE_URL`` does not say.

The user's data directory (``platformdirs``: ``$XDG_DATA_HOME/redis-mem`` or
``~/.local/share/redis-mem`` on Linux, ``~/Library/Application Support/redis-mem`` on
macOS), never the working directory: a CLI run from anywhere must not leave a file
there. Computed when asked, never at import (tests point ``XDG_DATA_HOME`` elsewhere),
and nothing here touches the disk except ``ensure_default_database_dir``.

Light on purpose (platformdirs only): ``redis-mem --help`` names the location.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "redis-mem"
DATABASE_FILE = "audit.db"


def default_database_path() -> Path:
    """The default audit database file (it may not exist yet)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / DATABASE_FILE


def default_database_url() -> str:
    """``sqlite:///<default_database_path()>``: the default of ``DATABASE_URL``."""
    return f"sqlite:///{default_database_path()}"


def ensure_default_database_dir(database_url: str) -> None:
    """Create the default database's folder (and its parents) before its first write.

    Only for the default location: a mistyped explicit ``DATABASE_URL`` path must fail
    as mistyped, not grow the folders it names.
    """
    if database_url == default_database_url():
        # 0o700: the trail names who ran what against which store; it is nobody else's.
        default_database_path().parent.mkdir(mode=0o700, parents=True, exist_ok=True)
