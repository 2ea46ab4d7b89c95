import io
import json

import pytest

from model.dataset.json_stream import JsonStreamError, iter_top_level, read_elements

DOCUMENT = {
    "info": {"description": "x", "nested": [1, {"a": "b"}]},
    "images": [{"id": i, "file_name": f"{i:04d}.jpg", "text": "é✓" * (i % 3) + "\u00e9"}
               for i in range(57)],
    "number": 1234567,
    "annotations": [],
    "categories": [{"id": 0, "name": "ünïcode ✓"}],
}


def _encoded(**dump_options) -> bytes:
    return json.dumps(DOCUMENT, **dump_options).encode("utf-8")


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 64, 1 << 20])
@pytest.mark.parametrize("ascii_only", [True, False])
def test_streamed_elements_equal_json_load(chunk_size, ascii_only):
    data = _encoded(ensure_ascii=ascii_only, indent=1)
    seen = set()
    items = list(iter_top_level(io.BytesIO(data), {"images", "annotations"}, chunk_size, seen))
    assert [i.value for i in items if i.key == "images"] == DOCUMENT["images"]
    whole = {i.key: i.value for i in items if i.key not in ("images", "annotations")}
    assert whole == {k: DOCUMENT[k] for k in ("info", "number", "categories")}
    assert seen == set(DOCUMENT)
    for item in items:  # spans are byte offsets of each item's own text
        assert json.loads(data[item.start:item.end].decode("utf-8")) == item.value


def test_ranges_of_elements_read_back_by_seeking():
    data = _encoded(ensure_ascii=False, indent=2)
    images = [i for i in iter_top_level(io.BytesIO(data), {"images"}) if i.key == "images"]
    for first, last in ((0, 0), (3, 17), (0, 56), (56, 56)):
        elements = read_elements(io.BytesIO(data), images[first].start, images[last].end)
        assert elements == DOCUMENT["images"][first:last + 1]


def test_number_split_across_chunks_is_read_whole():
    items = list(iter_top_level(io.BytesIO(b'{"n": 123456789}'), set(), chunk_size=3))
    assert [(i.key, i.value) for i in items] == [("n", 123456789)]


@pytest.mark.parametrize("text", [
    b'{"images": [1, 2', b'[1]', b'{"images": {}}', b'{"a": 1} trailing', b'', b'{"a" 1}',
    b'{"images": [{"id": 1},]}', b'{"a": tru}', b'{"a": "\xff"}', b'{"images": ["\xc3"]}',
])
def test_invalid_documents_raise_with_a_position(text):
    with pytest.raises(JsonStreamError, match="at byte"):
        list(iter_top_level(io.BytesIO(text), {"images"}, chunk_size=4))


def test_error_position_matches_the_standard_library():
    text = '{"images": [{"id": 1}, {"id": 2 "x": 3}]}'
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(JsonStreamError, match=f"at byte {expected.value.pos}"):
        list(iter_top_level(io.BytesIO(text.encode()), {"images"}, chunk_size=3))
