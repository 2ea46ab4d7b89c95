"""Inference throughput of the model compiled by XLA, on a machine without TensorFlow.

  export (here, with TensorFlow and the repo):
    python benchmarks/xla_gpu_throughput.py export --config tiny|r50fpn|sn143|YAML
        [--image_size N] [--batch_sizes 1,8] --out_dir DIR
  run (anywhere with python3, numpy and jax/jaxlib; no TensorFlow, no repo import):
    python3 benchmarks/xla_gpu_throughput.py run --in_dir DIR [--repeats 20] [--warmup 3]
        [--only SUBSTRING]

``export`` traces the accelerator part of the serving graph with
``model.static_ops_for_tpu`` on (gather-based RoIAlign, padded NMS), as
``tf.function(jit_compile=True)``: normalised, padded images float32[B, S, S, 3]
and image_info float32[B, 4, 2] in; backbone, FPN, RPN proposals, box head,
class-specific NMS, mask and attribute heads out: the model's ``detections``
(boxes float32[B, K, 4] input pixels, classes int32[B, K], scores float32[B, K],
num_detections int32[B], mask_probabilities float32[B, K, 28, 28],
attribute_probabilities float32[B, K, T]; K = postprocess.max_detections).
JPEG decoding and resizing (CPU work) and the serving signature's final box
rescaling and category-id mapping (a few elementwise ops on [B, K] tensors) are
left out.

Per (config, batch) it writes, under DIR, ``NAME.hlo.pb.gz`` (the unoptimised
XLA HloModuleProto, gzip), ``NAME.npz`` (the exact values of the non-weight
parameters: anchors and image_info) and an entry of ``manifest.json``: config,
image size, batch, the model's weight count, and every HLO parameter's name,
shape, dtype and how ``run`` fills it. Weights are parameters of the HLO, not
constants, so no weights travel: ``run`` draws each weight tensor from a normal
distribution with the mean and standard deviation of its TensorFlow random
initialisation (batch-norm scales 1, variances 1, biases 0, kernels at their
initialiser's scale), and the images from N(0, 1). Random weights are fine for
timing: every shape is static. Only the NMS while-loops run a value-dependent
number of iterations, and they see scores of the same kind as a randomly
initialised TensorFlow model's.

``run`` converts each HLO to StableHLO (jaxlib's ``hlo_to_stablehlo``), compiles
it for jax's default device, and prints per artifact: config, image size S
(pixels), batch B, device, compile seconds, median milliseconds per batch over
--repeats calls (each waited for with ``block_until_ready``, after --warmup
calls; inputs and weights stay on the device, so host transfers are not timed),
and images/s = B / median seconds. Precision is XLA's default for the
float32 convolutions and matmuls (on NVIDIA GPUs since Ampere: TF32, as in
TensorFlow's own default); presets with ``bfloat16: true`` compute in bfloat16.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np

MANIFEST = "manifest.json"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- export (TensorFlow)

def _hlo_signature(serialized: bytes):
    """([(shape, dtype name)] of the entry parameters, same for the result tuple)."""
    from tensorflow.compiler.xla import xla_data_pb2
    from tensorflow.compiler.xla.service import hlo_pb2

    module = hlo_pb2.HloModuleProto()
    module.ParseFromString(serialized)
    program = module.host_program_shape
    dtype = lambda shape: xla_data_pb2.PrimitiveType.Name(shape.element_type).lower()  # noqa: E731
    results = program.result.tuple_shapes if program.result.tuple_shapes else [program.result]
    return ([(list(p.dimensions), dtype(p)) for p in program.parameters],
            [(list(r.dimensions), dtype(r)) for r in results])


_XLA_TO_NUMPY = {"f32": "float32", "bf16": "bfloat16", "f16": "float16", "s32": "int32",
                 "s64": "int64", "pred": "bool"}


def export(config_name: str, image_size: int, batch_sizes, out_dir: str) -> None:
    sys.path.insert(0, REPO)
    import tensorflow as tf

    from model.config import load_config
    from model.data.augment import identity_image_info
    from model.modeling.factory import build_model

    config = load_config(config_name, ["model.static_ops_for_tpu=true"]).model
    size = image_size or load_config(config_name).input.image_size
    name_base = os.path.splitext(os.path.basename(config_name))[0]
    model = build_model(config, size)
    model(tf.zeros([1, size, size, 3]), identity_image_info(size, batch=1), training=False)
    weight_count = int(sum(np.prod(v.shape) for v in model.variables))
    by_handle = {id(v.handle): v for v in model.variables}

    @tf.function(jit_compile=True)
    def infer(images, image_info):
        return model(images, image_info, training=False)["detections"]

    os.makedirs(out_dir, exist_ok=True)
    manifest_path = os.path.join(out_dir, MANIFEST)
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as stream:
            manifest = json.load(stream)
    for batch in batch_sizes:
        name = f"{name_base}_s{size}_b{batch}"
        images = tf.zeros([batch, size, size, 3])
        image_info = identity_image_info(size, batch)  # unscaled, unpadded S x S images
        start = time.perf_counter()
        concrete = infer.get_concrete_function(images, image_info)
        serialized = infer.experimental_get_compiler_ir(images, image_info)(
            stage="hlo_serialized")
        seconds = time.perf_counter() - start
        shapes, results = _hlo_signature(serialized)

        # HLO parameters: the function's arguments, then its captured inputs in order.
        parameters = [{"name": "images", "fill": "normal", "mean": 0.0, "std": 1.0},
                      {"name": "image_info", "fill": "value"}]
        values = {"image_info": image_info.numpy()}
        for index, captured in enumerate(concrete.captured_inputs):
            variable = by_handle.get(id(captured))
            if variable is None:  # a constant the model computed eagerly (anchors)
                key = f"constant_{index}"
                parameters.append({"name": key, "fill": "value"})
                values[key] = captured.numpy()
            else:
                value = variable.numpy()
                parameters.append({"name": variable.name, "fill": "normal",
                                   "mean": float(value.mean()), "std": float(value.std())})
        if len(parameters) != len(shapes):
            raise RuntimeError(f"{name}: {len(shapes)} HLO parameters, {len(parameters)} known")
        for parameter, (shape, dtype) in zip(parameters, shapes):
            parameter.update(shape=shape, dtype=_XLA_TO_NUMPY[dtype])
            if parameter["name"] in values and list(values[parameter["name"]].shape) != shape:
                raise RuntimeError(f"{name}: {parameter['name']} is not {shape}")
        output_names = sorted(concrete.structured_outputs)  # XLA flattens dicts by sorted key
        with gzip.open(os.path.join(out_dir, name + ".hlo.pb.gz"), "wb", compresslevel=9) as out:
            out.write(serialized)
        np.savez_compressed(os.path.join(out_dir, name + ".npz"), **values)
        manifest[name] = {
            "config": name_base, "image_size": size, "batch": batch,
            "weight_count": weight_count, "bfloat16": config.bfloat16,
            "hlo": name + ".hlo.pb.gz", "values": name + ".npz",
            "parameters": parameters,
            "outputs": [{"name": n, "shape": s, "dtype": _XLA_TO_NUMPY[d]}
                        for n, (s, d) in zip(output_names, results)],
        }
        with open(manifest_path, "w") as stream:
            json.dump(manifest, stream, indent=1)
        print(f"{name}: {len(serialized) / 2**20:.1f} MiB HLO, {len(parameters)} parameters, "
              f"{weight_count / 1e6:.1f}M weights, traced and lowered in {seconds:.0f} s")


# ---------------------------------------------------------------- run (jax only)

def _arguments(entry: dict, in_dir: str, device):
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    values = np.load(os.path.join(in_dir, entry["values"]))
    arguments = []
    for parameter in entry["parameters"]:
        dtype = jnp.dtype(parameter["dtype"])
        if parameter["fill"] == "value":
            value = values[parameter["name"]]
        else:
            value = rng.normal(parameter["mean"], parameter["std"], parameter["shape"])
        arguments.append(jax.device_put(np.asarray(value).astype(dtype), device))
    return arguments


def run(in_dir: str, repeats: int, warmup: int, only: str) -> None:
    import jax
    from jax._src.lib import xla_client

    device = jax.devices()[0]
    with open(os.path.join(in_dir, MANIFEST)) as stream:
        manifest = json.load(stream)
    print("config image_size batch device compile_s median_ms_per_batch images_per_s",
          flush=True)
    for name, entry in manifest.items():
        if only and only not in name:
            continue
        with gzip.open(os.path.join(in_dir, entry["hlo"]), "rb") as stream:
            stablehlo = xla_client._xla.mlir.hlo_to_stablehlo(stream.read())
        start = time.perf_counter()
        executable = device.client.compile_and_load(
            stablehlo, xla_client.DeviceList((device,)), xla_client.CompileOptions())
        compile_seconds = time.perf_counter() - start
        arguments = _arguments(entry, in_dir, device)
        for _ in range(warmup):
            jax.block_until_ready(executable.execute(arguments))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            outputs = executable.execute(arguments)
            jax.block_until_ready(outputs)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        finite = all(bool(np.isfinite(np.asarray(o, np.float64)).all()) for o in outputs)
        print(f"{entry['config']} {entry['image_size']} {entry['batch']} "
              f"{device.device_kind.replace(' ', '_')} {compile_seconds:.1f} "
              f"{median * 1e3:.2f} {entry['batch'] / median:.4g}"
              + ("" if finite else " (non-finite outputs)"), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    exporter = commands.add_parser("export", help="trace and write HLO (needs TensorFlow)")
    exporter.add_argument("--config", required=True, help="preset name or YAML path")
    exporter.add_argument("--image_size", type=int, help="input side S (default: the config's)")
    exporter.add_argument("--batch_sizes", default="1,8")
    exporter.add_argument("--out_dir", required=True)
    runner = commands.add_parser("run", help="compile and time the HLO (needs only jax)")
    runner.add_argument("--in_dir", required=True)
    runner.add_argument("--repeats", type=int, default=20)
    runner.add_argument("--warmup", type=int, default=3)
    runner.add_argument("--only", default="", help="run the artifacts whose name contains this")
    args = parser.parse_args()
    if args.command == "export":
        from model.config import ConfigError
        try:
            export(args.config, args.image_size,
                   [int(b) for b in args.batch_sizes.split(",")], args.out_dir)
        except ConfigError as error:
            parser.exit(2, f"error: {error}\n")
    else:
        run(args.in_dir, args.repeats, args.warmup, args.only)


if __name__ == "__main__":
    main()
