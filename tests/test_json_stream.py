import io
import json

import pytest

from beam_pipelines.json_stream import JsonStreamError, iter_top_level

DOCUMENT = {
    "info": {"description": "x", "nested": [1, {"a": "b"}]},
    "images": [{"id": i, "file_name": f"{i:04d}.jpg", "text": "é" * (i % 7)} for i in range(57)],
    "number": 1234567,
    "annotations": [],
    "categories": [{"id": 0, "name": "ünïcode"}],
}


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 64, 1 << 20])
def test_streamed_elements_equal_json_load(chunk_size):
    data = json.dumps(DOCUMENT, ensure_ascii=False, indent=1).encode("utf-8")
    seen = set()
    pairs = list(iter_top_level(io.BytesIO(data), {"images", "annotations"}, chunk_size, seen))
    assert [value for key, value in pairs if key == "images"] == DOCUMENT["images"]
    whole = {key: value for key, value in pairs if key not in ("images", "annotations")}
    assert whole == {k: DOCUMENT[k] for k in ("info", "number", "categories")}
    assert seen == set(DOCUMENT)


def test_number_split_across_chunks_is_read_whole():
    pairs = list(iter_top_level(io.BytesIO(b'{"n": 123456789}'), set(), chunk_size=3))
    assert pairs == [("n", 123456789)]


@pytest.mark.parametrize("text", [
    b'{"images": [1, 2', b'[1]', b'{"images": {}}', b'{"a": 1} trailing', b'', b'{"a" 1}',
    b'{"images": [{"id": 1},]}', b'{"a": tru}', b'{"a": "\xff"}',
])
def test_invalid_documents_raise_with_a_position(text):
    with pytest.raises((JsonStreamError, UnicodeDecodeError)):
        list(iter_top_level(io.BytesIO(text), {"images"}, chunk_size=4))


def test_error_position_matches_the_standard_library():
    text = '{"images": [{"id": 1}, {"id": 2 "x": 3}]}'
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(JsonStreamError, match=f"at character {expected.value.pos}"):
        list(iter_top_level(io.BytesIO(text.encode()), {"images"}, chunk_size=3))
