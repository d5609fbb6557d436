"""Omniglot loader and fetcher, on the two small background sets in ../shared/data/omniglot.

The fetcher is tested against a local HTTP server on 127.0.0.1 that serves the same
zip files intact, cut short, corrupted or not at all.
"""

import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import Bunch

from sklmeta.datasets import OMNIGLOT_SUBSETS, OMNIGLOT_URL, fetch_omniglot, load_omniglot
from sklmeta.datasets import _omniglot

OMNIGLOT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"
SMALL1 = OMNIGLOT_DIR / "images_background_small1.zip"
SMALL2 = OMNIGLOT_DIR / "images_background_small2.zip"

pytestmark = pytest.mark.skipif(
    not (SMALL1.exists() and SMALL2.exists()),
    reason=f"the small Omniglot zips are not in {OMNIGLOT_DIR} (see DESIGN.md, 'Data in ../shared')",
)


@pytest.fixture(scope="module")
def merged():
    return load_omniglot(OMNIGLOT_DIR)


# ----------------------------------------------------------------------------- loading
def test_loads_the_merged_small_sets_deduplicating_greek_and_latin(merged):
    assert isinstance(merged, Bunch)
    assert merged.images.shape == (4840, 28, 28) and merged.images.dtype == np.float32
    assert merged.data.shape == (4840, 784)
    assert np.shares_memory(merged.data, merged.images)
    assert len(merged.target_names) == 242 and len(merged.alphabet_names) == 8
    assert list(merged.alphabet_names) == sorted(
        ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin",
         "Japanese_(katakana)", "Sanskrit", "Tagalog"]
    )
    assert merged.target.dtype == np.int64 and merged.alphabet.dtype == np.int64
    assert np.all(np.bincount(merged.target) == 20)  # 20 drawers per character
    assert len(set(merged.filenames)) == 4840
    # labels are consistent with the names
    for i in (0, 1234, 4839):
        alphabet, character, _ = merged.filenames[i].split("/")
        assert merged.target_names[merged.target[i]] == f"{alphabet}/{character}"
        assert merged.alphabet_names[merged.alphabet[i]] == alphabet
    assert "242 characters" in merged.DESCR


def test_pixels_are_in_unit_range_with_strokes_as_one(merged):
    images = merged.images
    assert images.min() == 0.0 and images.max() == 1.0
    # a few per cent of the pixels are strokes; borders are background
    assert 0.02 < images.mean() < 0.2
    assert images[:, 0, :].mean() < 0.02 and images[:, :, -1].mean() < 0.02


def test_each_zip_alone_and_duplicates_across_zips():
    one = load_omniglot(SMALL1)
    two = load_omniglot([str(SMALL2)])
    assert (len(one.target_names), len(one.images)) == (136, 2720)
    assert (len(two.target_names), len(two.images)) == (156, 3120)
    both = load_omniglot([SMALL1, SMALL2])
    assert len(both.target_names) == 136 + 156 - 50  # Greek (24) and Latin (26) shared
    assert len(both.images) == 4840
    greek = both.alphabet_names.tolist().index("Greek")
    assert np.array_equal(
        both.images[both.alphabet == greek],
        two.images[two.alphabet == two.alphabet_names.tolist().index("Greek")],
    )


def test_folders_and_zips_give_the_same_images(tmp_path):
    with zipfile.ZipFile(SMALL1) as archive:
        members = [n for n in archive.namelist() if "/Latin/" in n]
        archive.extractall(tmp_path, members=members)
    folder = tmp_path / "images_background_small1"
    from_folder = load_omniglot(folder)  # the set folder itself
    from_parent = load_omniglot(tmp_path)  # its parent
    from_zip = load_omniglot(SMALL1, alphabets=["Latin"])
    assert len(from_folder.target_names) == 26
    for other in (from_parent, from_zip):
        assert np.array_equal(from_folder.images, other.images)
        assert np.array_equal(from_folder.filenames, other.filenames)
    # the folder and the zip together: the Latin characters are loaded once
    mixed = load_omniglot([folder, SMALL1])
    assert len(mixed.images) == 2720 and len(mixed.target_names) == 136


def test_image_size_alphabets_and_return_X_y():
    full = load_omniglot(SMALL1, image_size=None, alphabets=["Greek"])
    assert full.images.shape == (480, 105, 105)
    assert set(np.unique(full.images)) == {0.0, 1.0}  # 1-bit originals, inverted
    rect = load_omniglot(SMALL1, image_size=(20, 24), alphabets=["Greek"])
    assert rect.images.shape == (480, 20, 24)
    X, y = load_omniglot(SMALL1, alphabets=["Greek", "Latin"], return_X_y=True)
    assert X.shape == (1000, 784) and y.shape == (1000,) and y.max() == 49


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"path_or_paths": 3}, TypeError, "path_or_paths"),
        ({"path_or_paths": []}, ValueError, "path_or_paths"),
        ({"path_or_paths": "/nonexistent/omniglot"}, FileNotFoundError, "path_or_paths"),
        ({"image_size": "big"}, TypeError, "image_size"),
        ({"image_size": 0}, ValueError, "image_size"),
        ({"image_size": (28, 28, 1)}, TypeError, "image_size"),
        ({"alphabets": "Greek"}, TypeError, "alphabets"),
        ({"alphabets": ["Klingon"]}, ValueError, "Klingon"),
        ({"return_X_y": "yes"}, TypeError, "return_X_y"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    kwargs = {"path_or_paths": SMALL1, **kwargs}
    with pytest.raises(error, match=match):
        load_omniglot(**kwargs)


def test_inputs_that_hold_no_omniglot_images(tmp_path):
    with pytest.raises(ValueError, match="No Omniglot images"):
        load_omniglot(tmp_path)
    not_a_zip = tmp_path / "notes.txt"
    not_a_zip.write_text("hello")
    with pytest.raises(ValueError, match="neither a folder nor a zip"):
        load_omniglot(not_a_zip)
    broken = tmp_path / "images_background.zip"
    broken.write_bytes(SMALL1.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable zip"):
        load_omniglot(broken)


# ---------------------------------------------------------------------------- fetching
class _Handler(http.server.BaseHTTPRequestHandler):
    """/ok/<file>: the file; /truncated/<file>: half of it, announced whole;
    /corrupt/<file>: same length, bytes changed; anything else: 404."""

    requests = []

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).requests.append(self.path)
        parts = self.path.strip("/").split("/")
        path = OMNIGLOT_DIR / parts[-1]
        if len(parts) != 2 or parts[0] not in ("ok", "truncated", "corrupt") or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if parts[0] == "corrupt":
            body = bytearray(body)
            body[len(body) // 2 : len(body) // 2 + 4096] = bytes(4096)
            body = bytes(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if parts[0] == "truncated":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


SMALL = ["background_small1", "background_small2"]


def _cache_files(data_home):
    folder = Path(data_home) / "omniglot"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_default_url_is_the_official_release():
    assert OMNIGLOT_URL == "https://github.com/brendenlake/omniglot/raw/master/python/"
    assert OMNIGLOT_SUBSETS["background"][0] == "images_background.zip"
    assert OMNIGLOT_SUBSETS["evaluation"][0] == "images_evaluation.zip"


def test_fetch_downloads_once_then_reads_the_cache(server, tmp_path, merged):
    _Handler.requests.clear()
    data = fetch_omniglot(tmp_path, subsets=SMALL, base_url=server + "/ok/", delay=0)
    assert _Handler.requests == ["/ok/images_background_small1.zip",
                                 "/ok/images_background_small2.zip"]
    assert _cache_files(tmp_path) == ["images_background_small1.zip",
                                      "images_background_small2.zip"]
    assert (tmp_path / "omniglot" / SMALL1.name).read_bytes() == SMALL1.read_bytes()
    assert np.array_equal(data.images, merged.images)
    assert np.array_equal(data.target, merged.target)
    # cached: no request, even with downloads forbidden
    X, y = fetch_omniglot(tmp_path, subsets=SMALL, download_if_missing=False,
                          base_url=server + "/ok/", return_X_y=True)
    assert len(_Handler.requests) == 2
    assert X.shape == (4840, 784) and np.array_equal(y, merged.target)


def test_missing_file_without_download_is_an_oserror(tmp_path):
    with pytest.raises(OSError, match="download_if_missing=False"):
        fetch_omniglot(tmp_path, subsets="background_small1", download_if_missing=False)
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize(
    "route, match", [("truncated", "interrupted: got 659511 of 1319022 bytes"), ("corrupt", "corrupt: its MD5")]
)
def test_interrupted_or_corrupt_download_leaves_nothing(server, tmp_path, route, match):
    _Handler.requests.clear()
    with pytest.raises(OSError, match=match) as info:
        fetch_omniglot(tmp_path, subsets="background_small1", base_url=f"{server}/{route}/",
                       n_retries=1, delay=0)
    assert "images_background_small1.zip" in str(info.value)
    assert len(_Handler.requests) == 2  # tried again once
    assert _cache_files(tmp_path) == []  # no zip, no temporary file
    # a later good download works
    fetch_omniglot(tmp_path, subsets="background_small1", base_url=server + "/ok/",
                   alphabets=["Latin"])
    assert _cache_files(tmp_path) == ["images_background_small1.zip"]


def test_a_corrupt_file_is_caught_without_a_known_checksum(server, tmp_path, monkeypatch):
    filename = OMNIGLOT_SUBSETS["background_small1"][0]
    monkeypatch.setitem(_omniglot.OMNIGLOT_SUBSETS, "background_small1", (filename, None))
    with pytest.raises(OSError, match="CRC|not a readable zip"):
        fetch_omniglot(tmp_path, subsets="background_small1", base_url=server + "/corrupt/",
                       n_retries=0)
    assert _cache_files(tmp_path) == []


def test_a_zip_without_omniglot_images_is_refused(tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "not omniglot")
    with pytest.raises(OSError, match="Omniglot layout"):
        _omniglot._verify_archive(other, None, "http://example/other.zip")


def test_not_found_is_not_retried(server, tmp_path):
    _Handler.requests.clear()
    with pytest.raises(OSError, match="404"):
        fetch_omniglot(tmp_path, subsets="background_small1", base_url=server + "/gone/",
                       n_retries=3, delay=0)
    assert len(_Handler.requests) == 1
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"subsets": ["background_large"]}, ValueError, "subsets"),
        ({"subsets": []}, ValueError, "subsets"),
        ({"subsets": [1]}, TypeError, "subsets"),
        ({"base_url": None}, TypeError, "base_url"),
        ({"n_retries": -1}, ValueError, "n_retries"),
        ({"image_size": 1.5}, TypeError, "image_size"),
    ],
)
def test_fetch_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        fetch_omniglot(tmp_path, **kwargs)
    assert _cache_files(tmp_path) == []


def test_fetch_reads_an_existing_cache_copied_by_hand(tmp_path):
    folder = tmp_path / "omniglot"
    folder.mkdir()
    shutil.copy(SMALL2, folder / SMALL2.name)
    data = fetch_omniglot(tmp_path, subsets="background_small2", download_if_missing=False,
                          alphabets=["Tagalog"])
    assert len(data.target_names) == 17


def _damage_a_member(source, target):
    """Copy ``source`` with the compressed bytes of one image overwritten."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(".png"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start : start + 16] = bytes(range(16))
    target.write_bytes(bytes(data))
    return info.filename


def test_a_damaged_member_names_the_zip_and_the_member(tmp_path):
    damaged = tmp_path / SMALL1.name
    member = _damage_a_member(SMALL1, damaged)
    with pytest.raises(ValueError, match="damaged") as info:
        load_omniglot(damaged)
    assert str(damaged) in str(info.value) and member in str(info.value)


def test_a_cache_corrupted_after_download_is_downloaded_again(server, tmp_path):
    folder = tmp_path / "omniglot"
    folder.mkdir()
    _damage_a_member(SMALL1, folder / SMALL1.name)
    with pytest.raises(OSError, match="corrupt.*download_if_missing=False"):
        fetch_omniglot(tmp_path, subsets="background_small1", download_if_missing=False)
    _Handler.requests.clear()
    with pytest.warns(UserWarning, match="corrupt.*downloading it again"):
        fetch_omniglot(tmp_path, subsets="background_small1", base_url=server + "/ok/",
                       alphabets=["Latin"])
    assert _Handler.requests == ["/ok/images_background_small1.zip"]
    assert (folder / SMALL1.name).read_bytes() == SMALL1.read_bytes()
