"""Creates pipelines, pinning what "DirectRunner" means locally.

Beam's DirectRunner first tries to download and start the Prism runner (a Go
binary) and silently falls back to the Python FnApiRunner when it cannot. The
two differ (Prism ignores --direct_running_mode, for one), so local runs here
always use the FnApiRunner, which honours --direct_running_mode and
--direct_num_workers. Any other --runner (DataflowRunner, PrismRunner, ...) is
used as given.
"""
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle

_LOCAL_RUNNER_NAMES = (None, "DirectRunner", "direct", "directrunner")


def create_pipeline(options: PipelineOptions) -> beam.Pipeline:
    if options.view_as(StandardOptions).runner not in _LOCAL_RUNNER_NAMES:
        return beam.Pipeline(options=options)
    # Workers read their pipeline options (filesystem settings among them) from
    # the provision info, as they do under the DirectRunner.
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=provision), options=options)
