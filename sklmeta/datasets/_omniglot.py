"""Omniglot (Lake, Salakhutdinov and Tenenbaum, 2015): a loader and a cached fetcher.

Omniglot is 1,623 handwritten characters from 50 alphabets, each drawn once by 20
people. The official release (https://github.com/brendenlake/omniglot) ships the
images as zip files in one layout::

    images_background/<Alphabet>/characterNN/<id>_<drawer>.png

:func:`load_omniglot` reads that layout from folders or straight from the zip files;
:func:`fetch_omniglot` downloads the zips once into ``data_home`` and loads them.
"""

import hashlib
import io
import numbers
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

import numpy as np
from sklearn.datasets import get_data_home
from sklearn.utils import Bunch

__all__ = ["load_omniglot", "fetch_omniglot", "OMNIGLOT_URL", "OMNIGLOT_SUBSETS"]

#: Where the official release keeps its Python zip files.
OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"

#: Subsets of the official release -> (file name, MD5 of the file).
#: The MD5s of images_background.zip and images_evaluation.zip are those torchvision
#: checks; those of the two small background sets were computed from copies of the
#: release files (entries dated October 2015).
OMNIGLOT_SUBSETS = {
    "background": ("images_background.zip", "68d2efa1b9178cc56df9314c21c6e718"),
    "evaluation": ("images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811"),
    "background_small1": ("images_background_small1.zip", "e704a628b5459e08445c13499850abc4"),
    "background_small2": ("images_background_small2.zip", "b75a71a51d3b13f821f212756fe481fd"),
}

_CHARACTER_DIR = re.compile(r"^character\d+$")

_DESCR = """\
Omniglot handwritten characters (Lake, Salakhutdinov and Tenenbaum, 2015)
-------------------------------------------------------------------------

Each character of each alphabet was drawn once by 20 different people (105x105
1-bit PNG images in the release). The full release has 1,623 characters of 50
alphabets: 964 characters of 30 alphabets in ``images_background`` and 659 of 20
in ``images_evaluation``; ``images_background_small1`` and ``_small2`` are two
5-alphabet subsets of the background set.

Images here are resized with a Lanczos filter and inverted, so that strokes are 1
and the background 0 (floats in [0, 1]).

Loaded: {n_images} images of {n_characters} characters from {n_alphabets} alphabets,
image size {shape}.

Licence: MIT, Copyright (c) 2015 Brenden Lake.

References
    Lake, B. M., Salakhutdinov, R. and Tenenbaum, J. B. (2015). Human-level concept
    learning through probabilistic program induction. Science, 350(6266), 1332-1338.
"""


# --------------------------------------------------------------------------- reading
def _check_image_size(image_size):
    """None, an int or an (height, width) pair -> None or a (height, width) tuple."""
    if image_size is None:
        return None
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in image_size
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise TypeError(
            "image_size must be None, an int or a (height, width) pair of ints; got "
            f"{image_size!r}."
        )
    if min(size) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}.")
    return size


def _as_path_list(path_or_paths):
    if isinstance(path_or_paths, (str, os.PathLike)):
        paths = [path_or_paths]
    elif isinstance(path_or_paths, (list, tuple)):
        paths = list(path_or_paths)
    else:
        raise TypeError(
            "path_or_paths must be a path (str or os.PathLike) to a folder or a zip file, "
            f"or a list of them; got {type(path_or_paths).__name__}."
        )
    if not paths:
        raise ValueError("path_or_paths must not be empty.")
    out = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(
                "path_or_paths must hold paths (str or os.PathLike); got an element of "
                f"type {type(p).__name__}."
            )
        p = Path(p).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"path_or_paths: {str(p)!r} does not exist.")
        out.append(p)
    return out


def _layout_key(parts):
    """Path components -> (alphabet, character, file) if they follow the Omniglot layout."""
    if len(parts) < 3 or any(part == "__MACOSX" for part in parts):
        return None
    alphabet, character, name = parts[-3], parts[-2], parts[-1]
    if name.startswith(".") or not name.lower().endswith(".png"):
        return None
    if not _CHARACTER_DIR.match(character):
        return None
    return alphabet, character, name


def _entries_from_zip(path, stack):
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
    except zipfile.BadZipFile as exc:
        raise ValueError(
            f"path_or_paths: {str(path)!r} is not a readable zip file ({exc})."
        ) from exc
    for info in archive.infolist():
        if info.is_dir():
            continue
        key = _layout_key(PurePosixPath(info.filename).parts)
        if key is not None:
            yield key, (lambda archive=archive, info=info: _read_member(archive, info, path))


def _read_member(archive, info, path):
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise ValueError(
            f"path_or_paths: the zip file {str(path)!r} is damaged: its member "
            f"{info.filename!r} cannot be read ({type(exc).__name__}: {exc}). Replace the "
            "file (fetch_omniglot downloads it again when it is deleted)."
        ) from exc


def _entries_from_dir(path, stack):
    found = False
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = Path(root, name)
            key = _layout_key(full.relative_to(path.parent).parts)
            if key is not None:
                found = True
                yield key, full.read_bytes
    if not found:  # a folder holding the release's zip files, e.g. a download cache
        for archive in sorted(path.glob("*.zip")):
            yield from _entries_from_zip(archive, stack)


def _decode(raw, size, where):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as image:
            image = image.convert("L")
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.LANCZOS)
            pixels = np.asarray(image, dtype=np.float32)
    except Exception as exc:  # PIL raises many types for a damaged file
        raise ValueError(f"Could not decode the image {where!r}: {exc}") from exc
    return pixels


def load_omniglot(path_or_paths, *, image_size=28, alphabets=None, return_X_y=False):
    """Load Omniglot images from folders or zip files in the official layout.

    Reads every ``<Alphabet>/characterNN/*.png`` found in the given folders (searched
    recursively) or zip files (a folder without such images is searched for ``*.zip``
    files, so a download cache can be passed). A character present in several inputs
    is loaded once: images are identified by alphabet, character folder and file name,
    and the first input that holds an image wins.

    Parameters
    ----------
    path_or_paths : str, os.PathLike or list of them
        Folders (an extracted ``images_background``, its parent, ...) or zip files
        (``images_background.zip``, ...).
    image_size : int, (int, int) or None, default=28
        Images are resized to this (height, width) with a Lanczos filter, as in the
        reference MAML code; None keeps the original 105x105.
    alphabets : list of str, default=None
        Load only these alphabets (folder names such as ``"Greek"``); None loads all.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        images : ndarray of shape (n_images, height, width), float32
            Pixel values in [0, 1], strokes 1 and background 0.
        data : ndarray of shape (n_images, height * width)
            The same pixels flattened (a view of ``images``).
        target : ndarray of shape (n_images,), int64
            Character label, an index into ``target_names``.
        alphabet : ndarray of shape (n_images,), int64
            Alphabet label, an index into ``alphabet_names``.
        target_names : ndarray of str
            ``"<Alphabet>/characterNN"`` of each character, sorted.
        alphabet_names : ndarray of str
            Alphabet names, sorted.
        filenames : ndarray of str
            ``"<Alphabet>/characterNN/<file>.png"`` of each image.
        DESCR : str
            Description of the dataset.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` flattened as above, as scikit-learn's loaders do.

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        If no image in the Omniglot layout is found, an input is not a readable zip
        file or folder, or an alphabet in ``alphabets`` is absent.

    See Also
    --------
    fetch_omniglot : download the release files once and load them.
    sklmeta.tasks.ImageTasks : N-way K-shot episodes from the loaded images.

    Examples
    --------
    >>> from pathlib import Path
    >>> from sklmeta.datasets import load_omniglot
    >>> path = Path("../shared/data/omniglot")  # the two small background zips
    >>> omniglot = load_omniglot(path, alphabets=["Greek", "Latin"])  # doctest: +SKIP
    >>> omniglot.images.shape, len(omniglot.target_names)  # doctest: +SKIP
    ((1000, 28, 28), 50)
    """
    paths = _as_path_list(path_or_paths)
    size = _check_image_size(image_size)
    if alphabets is not None:
        if isinstance(alphabets, str) or not all(isinstance(a, str) for a in alphabets):
            raise TypeError(
                f"alphabets must be a list of alphabet names (str), got {alphabets!r}."
            )
        wanted = set(alphabets)
    else:
        wanted = None
    if not isinstance(return_X_y, (bool, np.bool_)):
        raise TypeError(f"return_X_y must be a bool, got {return_X_y!r}.")

    with ExitStack() as stack:
        found = {}  # (alphabet, character, file) -> reader; first input wins
        seen_alphabets = set()
        for path in paths:
            if path.is_dir():
                entries = _entries_from_dir(path, stack)
            elif path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
                entries = _entries_from_zip(path, stack)
            else:
                raise ValueError(
                    f"path_or_paths: {str(path)!r} is neither a folder nor a zip file."
                )
            for key, reader in entries:
                seen_alphabets.add(key[0])
                if (wanted is None or key[0] in wanted) and key not in found:
                    found[key] = (reader, path)
        if not seen_alphabets:
            raise ValueError(
                f"No Omniglot images found in {[str(p) for p in paths]}: expected PNG "
                "files laid out as <set>/<Alphabet>/characterNN/*.png, in folders or zip "
                "files."
            )
        if wanted is not None and wanted - seen_alphabets:
            raise ValueError(
                f"alphabets {sorted(wanted - seen_alphabets)} are not in the data; "
                f"available: {sorted(seen_alphabets)}."
            )

        keys = sorted(found)
        alphabet_names = sorted({k[0] for k in keys})
        target_names = sorted({(k[0], k[1]) for k in keys})
        alphabet_index = {a: i for i, a in enumerate(alphabet_names)}
        target_index = {c: i for i, c in enumerate(target_names)}
        images = None
        for i, key in enumerate(keys):
            reader, source = found[key]
            pixels = _decode(reader(), size, f"{source}: {'/'.join(key)}")
            if images is None:
                images = np.empty((len(keys),) + pixels.shape, dtype=np.float32)
            elif pixels.shape != images.shape[1:]:
                raise ValueError(
                    f"Images differ in size ({'/'.join(key)} is {pixels.shape[::-1]}, "
                    f"earlier ones {images.shape[1:][::-1]}); pass an image_size to "
                    "resize them all."
                )
            images[i] = pixels

    np.multiply(images, -1.0 / 255.0, out=images)
    np.add(images, 1.0, out=images)  # strokes (black, 0) -> 1; background -> 0
    np.clip(images, 0.0, 1.0, out=images)
    target = np.array([target_index[(k[0], k[1])] for k in keys], dtype=np.int64)
    alphabet = np.array([alphabet_index[k[0]] for k in keys], dtype=np.int64)
    data = images.reshape(len(images), -1)
    if return_X_y:
        return data, target
    return Bunch(
        images=images,
        data=data,
        target=target,
        alphabet=alphabet,
        target_names=np.array([f"{a}/{c}" for a, c in target_names]),
        alphabet_names=np.array(alphabet_names),
        filenames=np.array(["/".join(k) for k in keys]),
        DESCR=_DESCR.format(
            n_images=len(keys),
            n_characters=len(target_names),
            n_alphabets=len(alphabet_names),
            shape="x".join(map(str, images.shape[1:])),
        ),
    )


# --------------------------------------------------------------------------- fetching
def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_archive(path, expected_md5, url):
    """Raise OSError unless ``path`` is the intact zip file expected from ``url``."""
    if expected_md5 is not None:
        got = _md5(path)
        if got != expected_md5:
            raise OSError(
                f"The file downloaded from {url} is corrupt: its MD5 is {got}, expected "
                f"{expected_md5}."
            )
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise OSError(f"The file downloaded from {url} is not a readable zip file: {exc}") from exc
    if bad is not None:
        raise OSError(f"The file downloaded from {url} is corrupt: member {bad!r} fails its CRC.")
    if not any(_layout_key(PurePosixPath(n).parts) for n in names):
        raise OSError(
            f"The zip file downloaded from {url} holds no images in the Omniglot layout "
            "(<set>/<Alphabet>/characterNN/*.png)."
        )


def _download(url, target, expected_md5, n_retries, delay, timeout):
    """Download ``url`` to ``target`` atomically: a temporary file, verified, then renamed.

    Nothing is left at ``target`` (nor any temporary file) when the download fails.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    last_error = None
    for attempt in range(n_retries + 1):
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    expected_size = response.headers.get("Content-Length")
                    shutil.copyfileobj(response, out, length=1 << 20)
                size = out.tell()
            if expected_size is not None and size != int(expected_size):
                raise OSError(
                    f"The download of {url} was interrupted: got {size} of "
                    f"{int(expected_size)} bytes."
                )
            _verify_archive(tmp, expected_md5, url)
            os.replace(tmp, target)
            return target
        except urllib.error.HTTPError as exc:
            last_error = exc
            if exc.code in (403, 404, 410):  # a wrong URL will not get better
                break
        except Exception as exc:  # noqa: BLE001 - OSError, http.client.IncompleteRead, ...
            last_error = exc
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        if attempt < n_retries:
            time.sleep(delay)
    raise OSError(
        f"Could not download {url} to {target} after {attempt + 1} attempt(s): "
        f"{last_error}"
    ) from last_error


def fetch_omniglot(
    data_home=None,
    *,
    subsets=("background", "evaluation"),
    image_size=28,
    alphabets=None,
    return_X_y=False,
    download_if_missing=True,
    base_url=OMNIGLOT_URL,
    n_retries=3,
    delay=1.0,
    timeout=60.0,
):
    """Load Omniglot, downloading the official zip files into ``data_home`` if needed.

    The zip files are kept as downloaded in ``<data_home>/omniglot/`` and read with
    :func:`load_omniglot`. A download goes to a temporary file in that folder, is
    checked (size, MD5, zip integrity, Omniglot layout) and only then renamed into
    place, so an interrupted or corrupt download leaves nothing behind.

    Parameters
    ----------
    data_home : str or os.PathLike, default=None
        Where to cache the zip files; by default scikit-learn's data folder
        (``~/scikit_learn_data`` or ``$SCIKIT_LEARN_DATA``).
    subsets : str or list of str, default=("background", "evaluation")
        Which release files to load, merged: ``"background"`` (964 characters,
        30 alphabets), ``"evaluation"`` (659 characters, 20 alphabets),
        ``"background_small1"``, ``"background_small2"`` (two 5-alphabet subsets of
        the background set).
    image_size : int, (int, int) or None, default=28
        See :func:`load_omniglot`.
    alphabets : list of str, default=None
        See :func:`load_omniglot`.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    download_if_missing : bool, default=True
        If False, raise an OSError when a file is not in the cache instead of
        downloading it.
    base_url : str, default=OMNIGLOT_URL
        URL of the folder holding the zip files (file names are appended), by default
        the official GitHub repository.
    n_retries : int, default=3
        Further attempts after a failed download (not after HTTP 403/404/410).
    delay : float, default=1.0
        Seconds between attempts.
    timeout : float, default=60.0
        Socket timeout of the download, in seconds.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch` or tuple
        As :func:`load_omniglot`.

    Raises
    ------
    OSError
        If a file is missing and ``download_if_missing`` is False, or a download
        fails or gives a corrupt file.

    Examples
    --------
    >>> from sklmeta.datasets import fetch_omniglot
    >>> omniglot = fetch_omniglot(subsets="background")  # doctest: +SKIP
    >>> omniglot.images.shape, len(omniglot.target_names)  # doctest: +SKIP
    ((19280, 28, 28), 964)
    """
    if isinstance(subsets, str):
        subsets = [subsets]
    subsets = list(subsets)
    if not all(isinstance(s, str) for s in subsets):
        raise TypeError(f"subsets must be a list of subset names (str), got {subsets!r}.")
    if not subsets:
        raise ValueError("subsets must name at least one Omniglot subset.")
    unknown = [s for s in subsets if s not in OMNIGLOT_SUBSETS]
    if unknown:
        raise ValueError(
            f"subsets: unknown Omniglot subset(s) {unknown}; expected some of "
            f"{sorted(OMNIGLOT_SUBSETS)}."
        )
    if not isinstance(base_url, str) or not base_url:
        raise TypeError(f"base_url must be a URL string, got {base_url!r}.")
    if not isinstance(n_retries, numbers.Integral) or n_retries < 0:
        raise ValueError(f"n_retries must be an int >= 0, got {n_retries!r}.")
    if not isinstance(delay, numbers.Real) or delay < 0:
        raise ValueError(f"delay must be a number >= 0, got {delay!r}.")
    _check_image_size(image_size)

    folder = Path(get_data_home(data_home)) / "omniglot"
    paths = []
    for subset in dict.fromkeys(subsets):
        filename, md5 = OMNIGLOT_SUBSETS[subset]
        path = folder / filename
        if path.exists() and md5 is not None and _md5(path) != md5:
            # damaged since it was downloaded (disk, an interrupted copy, an edit)
            if not download_if_missing:
                raise OSError(
                    f"The cached Omniglot file {path} is corrupt (its MD5 is not {md5}) "
                    "and download_if_missing=False: delete it to download it again."
                )
            warnings.warn(
                f"The cached Omniglot file {path} is corrupt (its MD5 is not {md5}); "
                "downloading it again.",
                UserWarning,
                stacklevel=2,
            )
            path.unlink()
        if not path.exists():
            if not download_if_missing:
                raise OSError(
                    f"Omniglot file {filename} is not in {folder} and "
                    "download_if_missing=False."
                )
            url = base_url.rstrip("/") + "/" + filename
            _download(url, path, md5, n_retries, delay, timeout)
        paths.append(path)
    return load_omniglot(
        paths, image_size=image_size, alphabets=alphabets, return_X_y=return_X_y
    )
