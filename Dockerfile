# Dataflow worker image with a GPU, for beam_pipelines.predict (the other pipelines run on it too).
#
#   CUDA 12.2 runtime + cuDNN 8.9: the versions TensorFlow 2.15 is built against
#     (the NVIDIA driver itself comes from Dataflow: worker_accelerator=...;install-nvidia-driver).
#   Python 3.11 and the Beam 2.72 SDK harness (its boot program is the entrypoint).
#   The pinned stack (constraints.txt) and this package.
#
# Build and push from the repository root:
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPOSITORY/fashion-worker-gpu:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPOSITORY/fashion-worker-gpu:TAG
FROM apache/beam_python3.11_sdk:2.72.0 AS beam_sdk

FROM nvidia/cuda:12.2.2-cudnn8-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    TF_CPP_MIN_LOG_LEVEL=1

# Ubuntu 22.04 ships Python 3.10; the SDK harness and the pins are for 3.11.
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv python3.11-dev build-essential ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# The SDK harness runs `python` and `pip` from PATH: make them the 3.11 environment.
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY --from=beam_sdk /opt/apache/beam /opt/apache/beam

WORKDIR /opt/fashion-segmentation
COPY setup.py constraints.txt README.md ./
COPY beam_pipelines ./beam_pipelines
COPY model ./model
COPY tpu ./tpu
RUN pip install --upgrade pip setuptools wheel \
 && pip install -c constraints.txt . \
 && python -c "import apache_beam, tensorflow as tf, tfx_bsl, pycocotools, beam_pipelines.predict; \
print('beam', apache_beam.__version__, 'tensorflow', tf.__version__, \
'built for CUDA', tf.sysconfig.get_build_info()['cuda_version'], \
'cuDNN', tf.sysconfig.get_build_info()['cudnn_version'])"

ENTRYPOINT ["/opt/apache/beam/boot"]
