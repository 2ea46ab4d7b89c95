"""The launcher side of a pipeline command, shared by make_records and predict.

``run_to_completion`` builds the job on a pipeline from the Beam options and
waits for it; ``report`` prints what the job wrote and counted, the last line
being the summary (``name=value`` for the summary counters, in order); ``main``
runs a command and turns the errors it expects into one ``error: ...`` line
on stderr with exit status 2.
"""
import logging
import sys
from typing import Callable, Dict, Sequence, Tuple, Type

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions
from apache_beam.runners.runner import PipelineResult

from beam_pipelines.pipeline_metrics import summary_line
from beam_pipelines.runner_choice import create_pipeline


def run_to_completion(beam_args: Sequence[str], save_main_session: bool,
                      build: Callable[[beam.Pipeline], None]) -> PipelineResult:
    """Creates the pipeline from ``beam_args``, lets ``build`` add the job, runs it and waits."""
    options = PipelineOptions(beam_args)
    options.view_as(SetupOptions).save_main_session = save_main_session
    pipeline = create_pipeline(options)
    build(pipeline)
    result = pipeline.run()
    result.wait_until_finish()
    return result


def report(outputs: Sequence[Tuple[str, str]], counters: Dict[str, int],
           summary_names: Sequence[str]) -> None:
    """Prints one ``label: path`` line per output, then every counter not in
    ``summary_names`` on one line (by name; no line when there are none), then
    the summary line."""
    for label, path in outputs:
        print(f"{label}: {path}")
    details = {name: value for name, value in sorted(counters.items())
               if name not in summary_names}
    if details:
        print(" ".join(f"{name}={value}" for name, value in details.items()))
    print(summary_line(counters, summary_names), flush=True)


def main(run: Callable[[], object], expected_errors: Tuple[Type[Exception], ...]) -> None:
    """Runs ``run()`` with INFO logging; an expected error prints ``error: <message>`` and
    exits with status 2."""
    logging.getLogger().setLevel(logging.INFO)
    try:
        run()
    except expected_errors as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
