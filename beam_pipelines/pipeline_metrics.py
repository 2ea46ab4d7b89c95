"""Reads a finished pipeline's counters and prints the one-line summary."""
from typing import Dict, Sequence

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult


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
