"""The runtime layer: the long-running parts of ``redis-mem serve`` and who may run jobs.

Owned by the composition root. Each part is a ``Component`` (start/stop); scheduled
jobs run only while the ``Leadership`` port says this replica leads. See
docs/decisions/runtime.md.
"""
