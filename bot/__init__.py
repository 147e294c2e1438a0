"""redis-mem: diagnose and fix a Redis session store that is running out of memory."""

__version__ = "0.1.0"
