"""Fashion instance segmentation with per-instance attributes on Beam and Cloud TPU.

This file is both the package definition and Dataflow's ``--setup_file`` for jobs on
Beam's default worker image: workers install the package with it, so every runtime
import is declared here. The GPU worker image (Dockerfile) installs it with the
``gpu`` extra instead, and is launched without ``--setup_file``.
"""
import setuptools

REQUIRED = [
    "apache-beam[gcp]>=2.60,<2.73",
    "tensorflow>=2.15,<2.16",
    "tfx-bsl>=1.15,<1.16",
    # tfx-bsl imports dill, which recent Beam releases no longer install.
    "dill>=0.3.1",
    # Beam's TensorFlow model handler imports tensorflow_hub at import time.
    "tensorflow-hub>=0.15,<0.17",
    "pycocotools>=2.0.7",
    "numpy>=1.26,<2",
    "pillow>=10",
    "pyyaml>=6",
]

# TensorFlow's own CUDA and cuDNN wheels (its `and-cuda` extra), for the GPU worker
# image; the NVIDIA driver comes from the machine.
GPU = ["tensorflow[and-cuda]>=2.15,<2.16"]

TEST = [
    "pytest>=8",
    "gcp-storage-emulator>=2024.8",
    # The official Fashionpedia evaluator: the oracle of the evaluation tests only.
    "fashionpedia==1.1",
]

setuptools.setup(
    name="fashion-segmentation",
    version="0.1.0",
    description=(
        "Attribute-Mask R-CNN for Fashionpedia / iMaterialist: Beam record "
        "and prediction pipelines, TPUEstimator training."
    ),
    python_requires=">=3.10,<3.12",
    packages=setuptools.find_packages(include=["beam_pipelines*", "model*", "tpu*"]),
    package_data={"model": ["configs/*.yaml"]},
    install_requires=REQUIRED,
    extras_require={"gpu": GPU, "test": TEST},
)
