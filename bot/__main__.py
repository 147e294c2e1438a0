"""``python -m bot`` is the ``redis-mem`` command."""

from bot.cli import main

main()
