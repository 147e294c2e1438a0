"""Kubernetes adapter: ConfigMap keys, container resources, rollout restarts, pods by label.

``cluster.KubeCluster`` is the only place that imports the ``kubernetes`` client
(it implements ``bot.remediation.ports.Cluster``); ``access`` lists the API calls
each method makes (the source of ``deploy/base/rbac.yaml``). Nothing here connects at
import time.
"""
