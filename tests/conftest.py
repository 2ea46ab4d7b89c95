import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model.synthetic.generate import ALL_FORMS, SyntheticConfig, generate_split  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures")


@pytest.fixture(scope="session")
def all_forms_dataset(tmp_path_factory):
    """A small synthetic dataset using every segmentation form; returns (json_path, image_dir)."""
    root = tmp_path_factory.mktemp("synthetic")
    config = SyntheticConfig(image_size=96, max_objects=5, seed=7, **ALL_FORMS)
    json_path = generate_split(str(root), "train", 24, config)
    return json_path, str(root / "train")


@pytest.fixture(scope="session")
def fashionpedia_sample():
    path = os.path.abspath(os.path.join(FIXTURES, "fashionpedia-sample"))
    if not os.path.isdir(path):
        pytest.skip(f"Fashionpedia sample fixture not found at {path} (it ships beside the repo, "
                    "not in it)")
    return path
