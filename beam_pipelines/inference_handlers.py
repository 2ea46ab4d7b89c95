"""RunInference model handlers for the exported SavedModel.

* ``SavedModelSignatureHandler``: loads the SavedModel with
  ``tf.saved_model.load`` and calls one string-input signature (image bytes,
  or serialized tf.Examples) on a batch; one PredictionResult per input whose
  ``inference`` maps output names to that input's numpy arrays.
* ``example_handler``: tfx-bsl's ``CreateModelHandler`` on the tf.Example
  signature (outputs come back as PredictionLog protos).
* ``RetrySingly``: wraps either so that a batch that fails is retried one
  input at a time. An input that fails alone with an error of the input's own
  making (``is_input_error``) yields ``InferenceFailed`` instead of failing the
  bundle, so one bad input never costs its neighbours; any other error fails
  the bundle, so that the runner retries it (Dataflow: 4 times in batch, then
  the job fails) instead of recording every remaining input as a bad image.
  It also fixes batching and model sharing: one model per worker machine
  (``large_model``, ``model_copies=1``), so a GPU never holds several copies.

Which errors are the input's (``is_input_error``): only TensorFlow's
``InvalidArgumentError``. It is what the serving graph raises when it cannot
decode an image that passed the pipeline's own checks (a JPEG with a broken
Huffman table, a PNG whose compressed data is corrupt), when a tf.Example
lacks the image feature, or when a tensor's shape or value is wrong for one
input. Everything else is taken for a fault of the worker, the model or the
service, whatever the input: ``ResourceExhaustedError`` (out of memory on the
GPU or host), ``UnavailableError``, ``InternalError``, ``UnknownError`` and
every other TensorFlow error; ``MemoryError``; ``OSError`` (which includes
``ConnectionError``, ``BrokenPipeError``), ``EOFError`` and
``multiprocessing.managers.RemoteError``, which are what a call to the shared
model raises when the process holding it has died (RunInference's
``large_model`` path serves the model from one worker process over a local
socket, ``apache_beam.utils.multi_process_shared``; errors raised by the model
itself cross that socket with their own type); and any exception not listed.
"""
import dataclasses
import logging
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult


def enable_gpu_memory_growth() -> None:
    """Lets TensorFlow allocate GPU memory as needed instead of all of it up front."""
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    import tensorflow as tf
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is already initialised in this process
            pass


class LoadedSignature:
    """A SavedModel signature as a plain object: ``predict(list of bytes) -> {name: ndarray}``.

    Plain method calls with numpy results are what a model shared across
    processes (Beam's multi_process_shared proxy) can forward.
    """

    def __init__(self, model_path: str, signature: str, input_name: str):
        enable_gpu_memory_growth()
        import tensorflow as tf
        self._loaded = tf.saved_model.load(model_path)
        self._function = self._loaded.signatures[signature]
        self._input_name = input_name

    def predict(self, inputs: List[bytes]) -> Dict[str, np.ndarray]:
        import tensorflow as tf
        outputs = self._function(**{self._input_name: tf.constant(inputs, tf.string)})
        return {name: value.numpy() for name, value in outputs.items()}


class SavedModelSignatureHandler(ModelHandler[bytes, PredictionResult, LoadedSignature]):
    """Batches of encoded strings (image bytes or serialized tf.Examples) -> per-input outputs.

    ``PredictionResult.example`` is None (the input bytes are not carried on);
    ``inference`` is {output name: ndarray without the batch axis}.
    """

    def __init__(self, model_path: str, signature: str, input_name: str):
        super().__init__()
        self._model_path = model_path
        self._signature = signature
        self._input_name = input_name

    def load_model(self) -> LoadedSignature:
        return LoadedSignature(self._model_path, self._signature, self._input_name)

    def run_inference(self, batch: Sequence[bytes], model: LoadedSignature,
                      inference_args: Optional[Dict[str, Any]] = None) -> Iterable[PredictionResult]:
        outputs = model.predict(list(batch))
        return [PredictionResult(None, {name: value[index] for name, value in outputs.items()})
                for index in range(len(batch))]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(item) for item in batch)

    def get_metrics_namespace(self) -> str:
        return "RunInference_SavedModel"


def example_handler(model_path: str, signature: str) -> ModelHandler:
    """tfx-bsl's handler for a tf.Example signature (in-process TF1-style session)."""
    from tfx_bsl.public.beam.run_inference import CreateModelHandler
    from tfx_bsl.public.proto import model_spec_pb2
    spec = model_spec_pb2.InferenceSpecType(saved_model_spec=model_spec_pb2.SavedModelSpec(
        model_path=model_path, signature_name=[signature]))
    return CreateModelHandler(spec)


@dataclasses.dataclass(frozen=True)
class InferenceFailed:
    """The result for an input that failed inference even on its own."""
    reason: str


def is_input_error(exc: BaseException) -> bool:
    """Whether ``exc``, raised by inference on a single input, is that input's fault
    (see the module docstring for the classification)."""
    import tensorflow as tf
    return isinstance(exc, tf.errors.InvalidArgumentError)


class RetrySingly(ModelHandler):
    """Runs ``inner`` on a batch; when that raises, runs each input alone.

    An input that fails alone with an input error (``is_input_error``) gets an
    ``InferenceFailed``; the first input that fails alone with any other error
    re-raises that error, failing the bundle (a batch whose inputs all fail
    alone with an out-of-memory error raises; it is not dead-lettered). A batch
    that fails whole but whose inputs all succeed alone (a batch too large for
    the GPU's memory) gives every result.

    Batching: between ``min_batch_size`` and ``max_batch_size`` inputs.
    Sharing: ``large_model`` loads ``model_copies`` model(s) per machine, in a
    process of their own that every worker process of the machine calls.
    """

    def __init__(self, inner: ModelHandler, *, min_batch_size: int, max_batch_size: int,
                 large_model: bool = True, model_copies: int = 1):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                         large_model=large_model, model_copies=model_copies if large_model else None)
        self._inner = inner

    def load_model(self) -> Any:
        enable_gpu_memory_growth()  # before the inner handler's TensorFlow touches a GPU
        return self._inner.load_model()

    def run_inference(self, batch: Sequence[Any], model: Any,
                      inference_args: Optional[Dict[str, Any]] = None) -> List[Any]:
        if len(batch) == 1:
            return [self._run_alone(batch[0], model, inference_args)]
        try:
            return list(self._inner.run_inference(batch, model, inference_args))
        except Exception as exc:
            logging.warning("inference failed on a batch of %d (%s); retrying one by one",
                            len(batch), _describe(exc))
        return [self._run_alone(item, model, inference_args) for item in batch]

    def _run_alone(self, item: Any, model: Any, inference_args: Optional[Dict[str, Any]]) -> Any:
        """``item``'s result, ``InferenceFailed`` for an input error; raises any other error."""
        try:
            (result,) = self._inner.run_inference([item], model, inference_args)
            return result
        except Exception as exc:
            if is_input_error(exc):
                return InferenceFailed(_describe(exc))
            exc.add_note(f"inference failed on a single input with {type(exc).__name__}, which "
                         "is not an error of the input: failing the bundle so that the runner "
                         "retries it, instead of recording the input as a bad image")
            raise

    def get_num_bytes(self, batch: Sequence[Any]) -> int:
        return self._inner.get_num_bytes(batch)

    def get_metrics_namespace(self) -> str:
        return self._inner.get_metrics_namespace()


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}"


def outputs_of(result: Any) -> Mapping[str, np.ndarray]:
    """One input's outputs as {name: ndarray} from a PredictionResult or a tfx-bsl PredictionLog."""
    if isinstance(result, PredictionResult):
        return result.inference
    import tensorflow as tf
    response = result.predict_log.response.outputs
    # tfx-bsl keeps a leading axis of 1 on each output.
    return {name: tf.make_ndarray(proto)[0] for name, proto in response.items()}
