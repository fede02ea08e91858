"""Which ``cluster`` keys belong to which kind, and the one rule for settings of another kind.

Each key of the ``cluster`` section is read by exactly one backend: ``n_workers``,
``threads_per_worker``, ``memory_limit``, ``processes`` and ``dashboard_address`` by the
embedded LocalCluster (``local``); ``address`` and ``connect_timeout`` by ``remote``;
everything under ``kubernetes`` by ``kubernetes``. The rule (docs/configuration.md,
"Cluster kinds and overrides"):

1. The kind is ``cluster.kind`` when the command line sets it; otherwise an override of a
   key only one other kind has (``cluster.address``, ``cluster.kubernetes.*``) switches to
   that kind. Either way the file's settings of the kinds it no longer runs are dropped:
   they described the cluster the command line replaced.
2. A setting of another kind than the one that runs is an error that names the key the
   running kind reads, never a silently ignored value: for a key set on the command line
   whatever its value, for a key in the file when it differs from the default (a resolved
   config, as ``validate`` prints it, lists every default and must load again).
"""

from __future__ import annotations

from typing import Any

from daskflow._errors import ConfigError

__all__ = ["KIND_OF_KEY", "resolve_overridden_kind", "other_kind_problem"]

#: The kind whose backend reads each key of the cluster section.
KIND_OF_KEY = {"n_workers": "local", "threads_per_worker": "local", "memory_limit": "local",
               "processes": "local", "dashboard_address": "local", "address": "remote",
               "connect_timeout": "remote", "kubernetes": "kubernetes"}
#: Keys whose override alone says which kind is meant (local's keys do not: see the module
#: docstring; running here instead of on the file's scheduler must be asked for by kind).
_SWITCHES = {"address": "remote", "kubernetes": "kubernetes"}
#: What kind kubernetes reads instead of a local key.
_KUBERNETES_KEY = {"n_workers": "n_workers", "threads_per_worker": "worker_cores",
                   "memory_limit": "worker_memory"}
_KINDS = ("local", "remote", "kubernetes")


def other_kind_problem(key: str, value: Any, kind: str) -> str | None:
    """Why ``cluster.<key> = value`` cannot be used with ``kind``; None if it can.

    The message says which kind reads the key and what to write instead.
    """
    owner = KIND_OF_KEY.get(key)
    if owner is None or owner == kind or kind not in _KINDS:
        return None
    shown = "..." if key == "kubernetes" else repr(value)
    head = f"cluster.{key} = {shown} is a setting of kind {owner!r}, but the cluster's kind is {kind!r}"
    if key == "kubernetes":
        return (f"{head}: cluster.kubernetes is only used with kind 'kubernetes'; remove it or set "
                "cluster.kind=kubernetes")
    if owner == "remote":
        return (f"{head}: it only applies to a remote scheduler; remove it, or set cluster.kind=remote "
                "(with cluster.address) to use one")
    if kind == "kubernetes":
        right = _KUBERNETES_KEY.get(key)
        if right is not None:
            return f"{head}: use cluster.kubernetes.{right}={_plain(value)} instead"
        return (f"{head}: Kubernetes workers are pods with their own settings under cluster.kubernetes "
                f"(see docs/kubernetes.md); remove cluster.{key}")
    return (f"{head}: a remote scheduler's workers are its own (start them with `dask worker "
            f"--nworkers/--nthreads/--memory-limit`); remove cluster.{key}, or set cluster.kind=local to "
            "run on a LocalCluster here")


def resolve_overridden_kind(cluster: dict[str, Any], overridden: set[tuple[str, ...]]) -> None:
    """Apply rule 1 and rule 2 to the command line's cluster keys, in place.

    Parameters
    ----------
    cluster : the raw ``cluster`` section after the overrides were applied
    overridden : key paths set on the command line (``("cluster", "address")``, ...)

    Raises
    ------
    ConfigError
        An override of a key the resolved kind does not read, or overrides that switch
        to two kinds at once.
    """
    if ("cluster",) in overridden:  # the whole section from the command line: it is the file
        return
    keys = {path[1] for path in overridden if len(path) >= 2 and path[0] == "cluster"}
    if "kind" in keys:
        kind = cluster.get("kind")
        switched_by = "cluster.kind"
    else:
        targets = {_SWITCHES[key]: key for key in keys if key in _SWITCHES}
        if len(targets) > 1:
            named = " and ".join(f"cluster.{key}" for key in sorted(keys & set(_SWITCHES)))
            raise ConfigError(f"the command line sets {named}: settings of kinds 'remote' and 'kubernetes' "
                              "at once; keep the one of the cluster you want, or set cluster.kind")
        if not targets:
            kind = cluster.get("kind", _implied_kind(cluster))
            switched_by = None
        else:
            kind, key = next(iter(targets.items()))
            switched_by = f"cluster.{key}"
    if kind not in _KINDS:
        return  # the schema names the allowed kinds
    if switched_by is not None:
        for key in [k for k in cluster if k not in keys and KIND_OF_KEY.get(k, kind) != kind]:
            del cluster[key]
        cluster["kind"] = kind
    for key in sorted(keys):
        problem = other_kind_problem(key, cluster.get(key), kind)
        if problem is not None:
            raise ConfigError(f"{problem} (cluster.{key} set on the command line"
                              + (f", kind set by {switched_by})" if switched_by else ")"))


def _implied_kind(cluster: dict[str, Any]) -> str:
    """The kind of a section without ``kind``: as ClusterConfig implies it."""
    if cluster.get("address"):
        return "remote"
    if cluster.get("kubernetes") is not None:
        return "kubernetes"
    return "local"


def _plain(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
