"""Start real, throwaway ``redis-server`` processes on free loopback ports.

Used by the test fixtures, the benchmarks and ``redis-mem demo`` alike (the demo
imports ``bot.redisproc``; this module re-exports it for the tests).
"""

from bot.redisproc import RedisServer, free_port, redis_server_available

__all__ = ["RedisServer", "free_port", "redis_server_available"]
