# Dataflow worker image with a GPU, for beam_pipelines.predict (the other pipelines run on it too).
#
#   Beam's Python 3.11 SDK image: Python, the Beam 2.72 SDK and its boot program (the entrypoint).
#   This package and the pinned stack (constraints.txt), with the `gpu` extra: TensorFlow's own
#   CUDA 12.2 / cuDNN 8.9 wheels (tensorflow[and-cuda]). The NVIDIA driver comes from Dataflow
#   (worker_accelerator=...;install-nvidia-driver).
#
# Build and push from the repository root:
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPOSITORY/fashion-worker-gpu:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPOSITORY/fashion-worker-gpu:TAG
# Launch jobs with --sdk_container_image=THAT_IMAGE --sdk_location=container and without
# --setup_file / --requirements_file: everything is installed here, nothing at worker start.
FROM apache/beam_python3.11_sdk:2.72.0

# Without RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT, boot creates a fresh venv for every SDK worker
# before starting it; with it, boot runs `python -m apache_beam.runners.worker.sdk_worker_main`
# in the image's default environment, where the install below puts everything.
ENV RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    TF_CPP_MIN_LOG_LEVEL=1

# Built from a directory that is removed afterwards, so that at run time the package is imported
# from site-packages, never from sources next to the worker's working directory.
COPY setup.py constraints.txt README.md /tmp/fashion-segmentation/
COPY beam_pipelines /tmp/fashion-segmentation/beam_pipelines
COPY model /tmp/fashion-segmentation/model
COPY tpu /tmp/fashion-segmentation/tpu
# The pins replace some of the base image's versions (numpy, protobuf, pyarrow, ...); packages of
# the base image that this pipeline does not use can then be left with an unmet requirement, which
# `pip check` lists in the build log. What must hold is the import check that follows.
RUN cd /tmp/fashion-segmentation \
 && pip install -c constraints.txt '.[gpu]' \
 && cd / && rm -rf /tmp/fashion-segmentation \
 && (pip check || true) \
 && python -c "import apache_beam, apache_beam.runners.worker.sdk_worker_main, tensorflow as tf, \
beam_pipelines.predict, beam_pipelines.make_records; \
info = tf.sysconfig.get_build_info(); \
print('beam', apache_beam.__version__, 'tensorflow', tf.__version__, \
'built for CUDA', info['cuda_version'], 'cuDNN', info['cudnn_version'])"
