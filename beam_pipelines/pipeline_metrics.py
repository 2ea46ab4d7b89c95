"""Beam counters of one pipeline: incremented by its DoFns, read back by its launcher.

A pipeline's DoFns share one ``Counters`` bound to the pipeline's namespace
(``make_records``, ``predict``); the launcher reads that namespace from the
finished ``PipelineResult`` with ``counter_values``.
"""
from typing import Dict, Sequence

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult


class Counters:
    """Increments the counters of one namespace (picklable: it holds only the name)."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    def inc(self, name: str, value: int = 1) -> None:
        """Adds ``value`` to counter ``name``; a zero value creates no counter."""
        if value:
            Metrics.counter(self.namespace, name).inc(value)

    def inc_coded(self, name: str, code: str, value: int = 1) -> None:
        """Adds ``value`` to ``name`` and to its break-down by code, ``name.code``."""
        self.inc(name, value)
        self.inc(f"{name}.{code}", value)


def counter_values(result: PipelineResult, namespace: str) -> Dict[str, int]:
    """All counters of ``namespace`` by name (committed values where the runner has them)."""
    values: Dict[str, int] = {}
    query = result.metrics().query(MetricsFilter().with_namespace(namespace))
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        values[counter.key.metric.name] = values.get(counter.key.metric.name, 0) + int(value or 0)
    return values


def summary_line(values: Dict[str, int], names: Sequence[str]) -> str:
    """``name=value`` pairs in the given order, missing counters as 0."""
    return " ".join(f"{name}={values.get(name, 0)}" for name in names)
