"""The jobs Dataflow would receive from both launchers, built offline as classic templates.

Each launcher runs with DataflowRunner and ``--template_location`` against the GCS emulator
(see tests/dataflow_jobs.py); the tests read the job request and the staged pipeline proto and
check what matters on Dataflow and never shows on DirectRunner:

* the work spreads over workers: a GroupByKey (a Reshuffle is one) stands on every path from
  where image paths are found to where images are read and inferred / built into records, so
  the runner cannot fuse the whole job behind the one element matching starts from;
* the request and the graph stay far below Dataflow's limits for an annotation file of
  Fashionpedia's size, whose content never enters the job;
* the worker image and the GPU service option arrive in the job;
* every DoFn and CombineFn unpickles in a fresh interpreter.

One job is built per pipeline form (module-scoped); the tests share them.
"""
import os

import pytest
from PIL import Image

from beam_pipelines import make_records, predict
from tests.dataflow_jobs import (ACCELERATOR, GRAPH_LIMIT_BYTES, REQUEST_LIMIT_BYTES, WORKER_IMAGE,
                                 anonymous_gcs, build_job, container_images, pickled_payloads,
                                 unpickle_in_fresh_process, unshuffled_reach)
from tests.gcs_emulator import running_emulator, upload_tree
from tests.prediction_helpers import tiny_model

_ = tiny_model  # a fixture used by name below
BUCKET = "fashion-dataflow-jobs"
NUM_IMAGES, NUM_ANNOTATIONS = 45_000, 300_000  # Fashionpedia train: 45,623 images, 333,401 instances
MARKER = "fashionpedia-size-image"  # in every file_name of the large annotation file


def write_annotation_file(path: str, num_images: int, num_annotations: int) -> None:
    """A COCO/Fashionpedia-format file with Fashionpedia's counts (46 categories, 294 attributes;
    each instance an 8-point polygon with two attributes), written as text for speed."""
    with open(path, "w") as stream:
        stream.write('{"info": {}, "categories": [')
        stream.write(",".join(f'{{"id": {i}, "name": "category {i}", "supercategory": "s"}}'
                              for i in range(46)))
        stream.write('], "attributes": [')
        stream.write(",".join(f'{{"id": {i}, "name": "attribute {i}", "supercategory": "a"}}'
                              for i in range(294)))
        stream.write('], "images": [')
        stream.write(",".join(f'{{"id": {i}, "file_name": "{MARKER}-{i:06d}.jpg", "width": 640, '
                              f'"height": 480}}' for i in range(num_images)))
        stream.write('], "annotations": [')
        stream.write(",".join(
            f'{{"id": {i}, "image_id": {i % num_images}, "category_id": {i % 46}, '
            f'"attribute_ids": [{i % 294}, {(i * 7) % 294}], "bbox": [10.0, 20.0, 30.0, 40.0], '
            f'"area": 1200.0, "iscrowd": 0, "segmentation": [[10.0, 20.0, 40.0, 20.0, 40.0, 60.0, '
            f'25.5, 61.5, 10.0, 60.0, 8.5, 40.0, 9.5, 30.0, 10.0, 25.0]]}}'
            for i in range(num_annotations)))
        stream.write("]}")


@pytest.fixture(scope="module")
def gcs():
    with running_emulator(BUCKET), anonymous_gcs():
        yield f"gs://{BUCKET}"


@pytest.fixture(scope="module")
def photos(gcs, tmp_path_factory):
    """Three PNGs in gs://BUCKET/photos and a manifest choosing two of them."""
    local = tmp_path_factory.mktemp("job_photos")
    for index in range(3):
        Image.new("RGB", (32, 32), (60 * index, 20, 200)).save(local / f"p{index}.png")
    upload_tree(str(local), f"{gcs}/photos")
    manifest = local / "chosen.txt"
    manifest.write_text(f"# chosen photos\np0.png\n\n{gcs}/photos/p2.png\n")
    upload_tree(str(local), f"{gcs}/lists")
    return f"{gcs}/photos", f"{gcs}/lists/chosen.txt"


@pytest.fixture(scope="module")
def annotation_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("job_annotations") / "instances_attributes_train.json")
    write_annotation_file(path, NUM_IMAGES, NUM_ANNOTATIONS)
    return path


@pytest.fixture(scope="module")
def jobs(gcs, photos, tiny_model, annotation_file):
    image_dir, manifest = photos
    return {
        "predict_images": build_job(predict.run, [
            "--model", tiny_model, "--images", image_dir, "--output", f"{gcs}/out/images"],
            BUCKET, "predict_images"),
        "predict_manifest": build_job(predict.run, [
            "--model", tiny_model, "--images_manifest", manifest, "--images", image_dir,
            "--output", f"{gcs}/out/chosen"], BUCKET, "predict_manifest"),
        "records_image_only": build_job(make_records.run, [
            "--image_dir", f"{image_dir}/*.png", "--output_file_prefix", f"{gcs}/records/photos",
            "--num_shards", "4"], BUCKET, "records_image_only"),
        "records_annotated": build_job(make_records.run, [
            "--image_dir", f"{image_dir}/*", "--object_annotations_file", annotation_file,
            "--output_file_prefix", f"{gcs}/records/train", "--num_shards", "256"],
            BUCKET, "records_annotated"),
    }


def test_a_template_is_written_and_nothing_runs(jobs, gcs):
    from apache_beam.io.filesystems import FileSystems
    for name, built in jobs.items():
        assert built.returned == {}, name
        assert f"template: {gcs}/templates/{name}.json" in built.printed.splitlines(), name
        assert "images_read=" not in built.printed, name  # no summary: no job ran
    for prefix in ("out/images", "out/chosen", "records/photos-0", "records/train-0"):
        assert FileSystems.match([f"{gcs}/{prefix}*"])[0].metadata_list == [], prefix


@pytest.mark.parametrize("name, source, target", [
    ("predict_images", "MatchImages", "RunInference"),
    ("predict_manifest", "ReadManifest", "RunInference"),
    ("records_image_only", "MatchImages", "BuildRecords"),
    ("records_annotated", "MatchImages", "BuildRecords"),
    ("records_annotated", "AnnotationFileRanges", "BuildRecords"),
])
def test_a_shuffle_between_finding_inputs_and_the_work(jobs, name, source, target):
    """Without one, Dataflow fuses the work into the source's stage: MatchFiles is one element
    (a pattern) turned into every path by a plain ParDo, so one worker thread would read and
    infer every image however many workers the job has."""
    assert unshuffled_reach(jobs[name], source, target) == set()


def test_requests_far_below_dataflows_limits(jobs, annotation_file):
    sizes = {name: (built.request_bytes, built.proto_bytes) for name, built in jobs.items()}
    print("request / pipeline proto bytes:", sizes)
    for name, (request, proto) in sizes.items():
        assert request < REQUEST_LIMIT_BYTES // 100, name
        assert proto < GRAPH_LIMIT_BYTES // 20, name
    annotated = jobs["records_annotated"]
    # The annotation file never travels: only the byte ranges of its arrays do.
    assert os.path.getsize(annotation_file) > 3 * REQUEST_LIMIT_BYTES
    assert annotated.proto_bytes < 2 * jobs["records_image_only"].proto_bytes
    staged = annotated.proto.SerializeToString()
    assert MARKER.encode() not in staged and b"category 45" not in staged
    ranges = [t for t in annotated.proto.components.transforms.values()
              if t.unique_name.startswith("AnnotationFileRanges/")]
    ranges_bytes = sum(t.ByteSize() for t in ranges)
    print("annotation file ranges in the proto:", ranges_bytes, "bytes")
    assert ranges_bytes < 64 * 1024


def test_worker_image_and_gpu_arrive_in_the_job(jobs):
    for name, built in jobs.items():
        environment = built.job["environment"]
        assert ACCELERATOR in environment["serviceOptions"], name
        (pool,) = environment["workerPools"]
        assert {image["containerImage"] for image in pool["sdkHarnessContainerImages"]} == {
            WORKER_IMAGE}, name
        assert pool["machineType"] == "g2-standard-4" and pool["diskSizeGb"] == 50, name
        assert set(container_images(built)) == {WORKER_IMAGE}, name
        assert built.options["sdk_location"] == "container", name
        assert built.options["dataflow_service_options"] == [ACCELERATOR], name
        # Workers install nothing at start: no package, setup file or requirements staged.
        staged = {package["name"] for package in pool.get("packages", [])}
        assert staged <= {"submission_environment_dependencies.txt"}, (name, staged)


def test_every_dofn_unpickles_in_a_fresh_process(jobs, tmp_path):
    payloads, library = {}, None
    for name, built in jobs.items():
        library = built.options["pickle_library"]
        payloads.update({f"{name}: {step}": payload
                         for step, payload in pickled_payloads(built).items()})
    types = unpickle_in_fresh_process(payloads, library, str(tmp_path))
    assert set(types) == set(payloads)
    expected = {
        "predict_images: CheckImages/": "beam_pipelines.predict_inputs.ReadImageFiles",
        "predict_manifest: ManifestPaths": "beam_pipelines.predict_inputs.manifest_path",
        "predict_manifest: CheckImages/": "beam_pipelines.predict_inputs.ReadListedImages",
        "predict_images: RunInference/": "apache_beam.ml.inference.base._RunInferenceDoFn",
        "predict_images: SelectDetections/": "beam_pipelines.predict_outputs.ToDetections",
        "predict_images: EncodeMasksRle": "beam_pipelines.rle.EncodeMasksRle",
        "predict_images: ToJsonLines": "beam_pipelines.predict_outputs.to_json_lines",
        "records_image_only: BuildRecords/": "beam_pipelines.record_dofns.BuildImageOnlyRecords",
        "records_annotated: ReadCocoJson/": "beam_pipelines.record_dofns.ReadCocoRange",
        "records_annotated: BuildRecords/": "beam_pipelines.record_dofns.BuildAnnotatedRecords",
    }
    for prefix, kind in expected.items():
        found = [types[step] for step in types if step.startswith(prefix)]
        assert any(kind in found_types for found_types in found), (prefix, found)
