"""The launcher side of a pipeline command, shared by make_records and predict.

``run_to_completion`` builds the job on a pipeline from the Beam options and
waits for it (with ``--template_location``, Dataflow's runner writes a classic
template there instead: nothing runs, so there is nothing to wait for and no
counters to read); ``report`` prints what the job wrote and counted, the last line
being the summary (``name=value`` for the summary counters, in order); ``main``
runs a command and turns the errors it expects into one ``error: ...`` line
on stderr with exit status 2 (the status of a usage error, as argparse gives).

A job that ran to the end can still have failed: ``check_outcome`` (after
``report``) raises ``JobFailed`` when it wrote nothing, or when more than
``--max_failed_fraction`` of the images it read failed (``add_outcome_flags``);
``main`` prints that as one ``error: ...`` line on stderr, after the summary
line, with exit status 1.
"""
import argparse
import logging
import sys
from typing import Callable, Dict, Optional, Sequence, Tuple, Type

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, SetupOptions
from apache_beam.runners.runner import PipelineResult

from beam_pipelines.pipeline_metrics import summary_line
from beam_pipelines.runner_choice import create_pipeline


def run_to_completion(beam_args: Sequence[str], save_main_session: bool,
                      build: Callable[[beam.Pipeline], None]) -> Optional[PipelineResult]:
    """Creates the pipeline from ``beam_args``, lets ``build`` add the job, runs it and waits.

    With ``--template_location`` (DataflowRunner) the runner stages the job and
    writes it as a classic template instead of submitting it: this prints
    ``template: LOCATION`` and returns None (no job ran, no counters exist).
    """
    options = PipelineOptions(beam_args)
    options.view_as(SetupOptions).save_main_session = save_main_session
    template = options.view_as(GoogleCloudOptions).template_location
    pipeline = create_pipeline(options)
    build(pipeline)
    result = pipeline.run()
    if template and getattr(result, "has_job", True) is False:  # Dataflow's result of a template
        print(f"template: {template}", flush=True)
        return None
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


class InputError(ValueError):
    """An input flag names nothing the job can read (no file matches, a missing list)."""


def main(run: Callable[[], object], expected_errors: Tuple[Type[Exception], ...]) -> None:
    """Runs ``run()`` with INFO logging; an expected error prints ``error: <message>`` and
    exits with status 2."""
    logging.getLogger().setLevel(logging.INFO)
    try:
        run()
    except (InputError,) + tuple(expected_errors) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except JobFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(JOB_FAILED_STATUS) from None


DEFAULT_MAX_FAILED_FRACTION = 0.5
JOB_FAILED_STATUS = 1


class JobFailed(Exception):
    """The job ran to the end but failed as a whole; ``counters`` are its counters."""

    def __init__(self, message: str, counters: Dict[str, int]):
        super().__init__(message)
        self.counters = counters


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1]")
    return value


def add_outcome_flags(parser: argparse.ArgumentParser) -> None:
    """Adds ``--max_failed_fraction`` (the images failed / images read above which the job fails)."""
    parser.add_argument(
        "--max_failed_fraction", type=_fraction, default=DEFAULT_MAX_FAILED_FRACTION,
        help="Exit with status 1, after the summary line, when more than this fraction of the "
             "images read failed (default %(default)s; 1 never fails on the fraction). A job that "
             "wrote nothing exits with status 1 whatever this is.")


def check_outcome(counters: Dict[str, int], written: str, max_failed_fraction: float,
                  errors: str) -> None:
    """Raises JobFailed when the job read no image, wrote none of those it read (counter
    ``written``), or failed more than ``max_failed_fraction`` of them. ``errors`` (the
    dead-letter file, which gives each failed image's reason) goes into the message."""
    read, failed = counters.get("images_read", 0), counters.get("images_failed", 0)
    if read == 0:
        raise JobFailed("the job read no image, so it wrote nothing", counters)
    if counters.get(written, 0) == 0:
        raise JobFailed(f"the job wrote nothing: {written}=0 of images_read={read} "
                        f"(images_failed={failed}; reasons in {errors})", counters)
    if failed > max_failed_fraction * read:
        raise JobFailed(f"{failed} of {read} images failed ({failed / read:.1%}), more than "
                        f"--max_failed_fraction {max_failed_fraction:g} (reasons in {errors})",
                        counters)
