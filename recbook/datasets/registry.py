"""Where public data comes from and how a copy is verified: the sha256 registry shipped in the
package (``recbook/data/registry.txt``), pooch downloads into :func:`data_dir`, and
:class:`Files`, which reads a zip, folder or single file and hashes what it reads.

The sources (:mod:`~recbook.datasets.movielens`, :mod:`~recbook.datasets.online_retail`) parse
what :func:`open_copy` hands them; this module knows nothing of their formats.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pooch

from recbook.checksums import ChecksumError, sha256_bytes, sha256_file

DATA_ENV = "RECBOOK_DATA"
_REPO = Path(__file__).resolve().parents[2]  # recbook/datasets/registry.py -> the checkout
# the repository's data/ folder, only when recbook runs from a checkout (not from a wheel)
_REPO_DATA = _REPO / "data" if (_REPO / "pyproject.toml").is_file() else None
REGISTRY = "data/registry.txt"  # inside the package: read with importlib.resources


class DataUnavailableError(FileNotFoundError):
    """A public data file that is not cached and could not be downloaded."""


class UnverifiedDataWarning(UserWarning):
    """A local copy given with ``path=`` that matches no recorded checksum (used, but flagged)."""


@dataclass(frozen=True)
class Spec:
    """One public source: its official download, the file a copy must hold, and provenance
    (each source module defines its own)."""

    name: str  # as in recbook.datasets.DATASETS
    archive: str  # the official download's file name (a key of the registry)
    folder: str  # the folder inside the official zip that holds the files ("" = its root)
    main: str  # the file a copy must contain (ratings / workbook)
    call: str  # how to pass a local copy, for error messages
    homepage: str
    licence: str
    citation: str
    main_suffix: str | None = None  # accept one file with this suffix when ``main`` is absent


def data_dir() -> Path:
    """Folder for downloaded data: ``$RECBOOK_DATA``, else the repository's ``data/`` when
    recbook runs from a checkout, else the user cache (``pooch.os_cache("recbook")``)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    if _REPO_DATA is not None and _REPO_DATA.is_dir():
        return _REPO_DATA
    return Path(pooch.os_cache("recbook"))


@functools.lru_cache(maxsize=1)
def _read_registry() -> dict[str, tuple[str, str | None]]:
    resource = importlib.resources.files("recbook").joinpath(REGISTRY)
    if not resource.is_file():
        raise FileNotFoundError(
            f"the checksum registry recbook/{REGISTRY} is missing from the installed package; "
            "reinstall recbook (it ships inside the package)"
        )
    reader = pooch.Pooch(path=data_dir(), base_url="")
    with resource.open("r", encoding="utf-8") as handle:
        reader.load_registry(handle)  # pooch's own format: name  sha256:HASH  [url]
    out: dict[str, tuple[str, str | None]] = {}
    for fname, checksum in reader.registry.items():
        alg, _, digest = checksum.partition(":")
        if alg != "sha256" or len(digest) != 64:
            raise ValueError(f"recbook/{REGISTRY}: {fname} needs a 'sha256:<64 hex>' checksum")
        out[fname] = (digest, reader.urls.get(fname))
    return out


def entries() -> dict[str, tuple[str, str | None]]:
    """``{file name: (sha256, url)}`` from the package's ``data/registry.txt``: the official
    archives, and files inside them under their path in the zip."""
    return _read_registry()


def _download(fname: str, directory: Path) -> Path:
    """Download one registered file into ``directory`` with pooch (sha256-checked)."""
    sha, url = entries()[fname]
    fetcher = pooch.Pooch(
        path=directory,
        base_url="",
        registry={fname: f"sha256:{sha}"},
        urls={fname: url},
        retry_if_failed=1,
        allow_updates=False,
    )
    return Path(fetcher.fetch(fname, progressbar=True))


def _mismatch(target: Path, actual: str, sha: str, url: str | None) -> ChecksumError:
    return ChecksumError(
        f"the cached file {target} has sha256 {actual}, but recbook's registry expects "
        f"{sha}: it is corrupted, incomplete (an interrupted download?) or not the official "
        f"file. Delete it (rm '{target}') and load again to download a fresh copy from "
        f"{url}, or replace it with a good copy."
    )


def _official_archive(spec: Spec) -> Path:
    """The official archive's place in :func:`data_dir`, downloaded (sha256-checked by pooch)
    when absent; whoever reads it hashes the bytes it reads."""
    sha, url = entries()[spec.archive]
    target = data_dir() / spec.archive
    if not target.exists():
        try:
            target = _download(spec.archive, target.parent)
        except Exception as exc:  # network, TLS, HTTP, disk: all mean "not available"
            if isinstance(exc, ValueError) and "hash" in str(exc).lower():
                raise ChecksumError(
                    f"{spec.name}: the file downloaded from {url} does not have the sha256 "
                    f"{sha} recorded in recbook's registry, so it was discarded ({exc}). The "
                    f"server copy may have changed or the transfer broke; try again, or get the "
                    f"file elsewhere and pass it with {spec.call}."
                ) from exc
            raise DataUnavailableError(_unavailable_message(spec, target, sha, url, exc)) from exc
    return target


def official_copy(spec: Spec) -> Path:
    """The verified official archive in :func:`data_dir`, downloaded on first use."""
    sha, url = entries()[spec.archive]
    target = _official_archive(spec)
    actual = sha256_file(target)
    if actual != sha:
        raise _mismatch(target, actual, sha, url)
    return target


def _unavailable_message(spec: Spec, target: Path, sha: str, url: str | None, exc) -> str:
    return (
        f"{spec.name}: {spec.archive} is not in the data folder and could not be downloaded "
        f"({type(exc).__name__}: {exc}).\n"
        f"  URL:             {url}\n"
        f"  expected sha256: {sha}\n"
        f"  put the file at: {target}\n"
        f"Download it where there is network access (or copy it from a colleague) and save it "
        f"at that path (set {DATA_ENV} to use another folder), or pass a local copy with "
        f"{spec.call} - the zip, the folder extracted from it, or its {spec.main} file."
    )


#: Largest file recbook reads into memory from a copy (a zip, or one member of it, or a file in
#: a folder): the biggest official one (ML-1M ratings.dat) is ~25 MB. Raise it for bigger data.
MAX_FILE_BYTES = 1 << 30


def _capped(size: int, what: str) -> None:
    if size > MAX_FILE_BYTES:
        raise ValueError(
            f"{what} is {size:,} bytes, above the cap of {MAX_FILE_BYTES:,} bytes "
            "(recbook.datasets.registry.MAX_FILE_BYTES) for one file read into memory; no "
            "official dataset file is that large. If this really is your data, raise the cap."
        )


class Files:
    """The files of one copy of a dataset, found by base name in a zip or a folder, or just the
    one file named, so every parser reads the same way whatever the user passed.

    A single file means only that file: files beside it are never read (pass the folder to
    use them). In a zip or folder the files come from ONE folder, the one holding the main
    file; a copy with the main file in several folders (a decoy ``zzz/u.data`` beside
    ``ml-100k/``) is refused as ambiguous. A zip is read into memory once and
    :attr:`archive_sha256` is the hash of those bytes, the ones its members are parsed from
    (no check-then-reopen). Unless the whole archive matched the registry (``trusted``), every
    file read is hashed as read and checked against the registry's entry for it, when there is
    one. Every file is capped at :data:`MAX_FILE_BYTES`.
    """

    def __init__(self, path: Path, spec: Spec, official: bool = False):
        """``official=True``: ``path`` is the downloaded archive, whose bytes must hash to the
        registry's sha256 (then every member is trusted)."""
        self.path, self.spec, self.trusted = path, spec, False
        self.read_sha256: dict[str, str] = {}  # real file name -> sha256 of the bytes parsed
        self.archive_sha256: str | None = None
        self._zip: zipfile.ZipFile | None = None
        main = spec.main
        if path.is_dir():
            self.kind = "folder"
            found = [f for f in [*path.iterdir(), *path.glob("*/*")] if f.is_file()]
            listed = [(f.parent.relative_to(path).as_posix(), f.name, str(f)) for f in found]
        elif path.suffix.lower() == ".zip":
            self.kind = "zip"
            _capped(path.stat().st_size, f"the zip {path}")
            blob = path.read_bytes()
            self.archive_sha256 = sha256_bytes(blob)
            if official:
                sha, url = entries()[spec.archive]
                if self.archive_sha256 != sha:
                    raise _mismatch(path, self.archive_sha256, sha, url)
                self.trusted = True
            try:
                self._zip = zipfile.ZipFile(io.BytesIO(blob))
            except zipfile.BadZipFile as exc:
                raise ValueError(
                    f"{path} is not a readable zip archive ({exc}); a truncated download? "
                    "Download it again."
                ) from exc
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
            listed = [(n.rpartition("/")[0], n.rpartition("/")[2], n) for n in names]
        else:
            self.kind = "file"
            listed = [(".", path.name, str(path))]  # only the file named, never its siblings
        listed = [(d or ".", name, ref) for d, name, ref in listed]
        self.real = {}  # name used by the loader -> the file's own name
        holders = sorted({d for d, name, _ in listed if name == main})
        if self.kind == "file":
            holders, self.real[main] = ["."], path.name
        elif not holders and spec.main_suffix:  # e.g. a renamed workbook
            alike = [(d, n) for d, n, _ in listed if n.lower().endswith(spec.main_suffix)]
            if len(alike) == 1:
                holders, self.real[main] = [alike[0][0]], alike[0][1]
        if not holders:
            raise FileNotFoundError(
                f"{path} has no {main}; pass the official zip, the folder extracted from it, "
                f"or the {main} file itself"
            )
        if len(holders) > 1:
            raise ValueError(
                f"{path} holds {main} in {len(holders)} folders ({', '.join(holders)}), so it "
                f"is not one copy of {spec.name}: the files to read are ambiguous. Pass the "
                "folder of the copy you mean (extract the zip first), or remove the others."
            )
        self.folder = holders[0]
        self.members = {name: ref for d, name, ref in listed if d == self.folder}
        if self.kind == "file":
            self.members = {main: str(path)}  # the file the user named is the main file
        elif main in self.real:
            self.members[main] = self.members[self.real[main]]

    def has(self, name: str) -> bool:
        return name in self.members

    def local_file(self, name: str) -> Path:
        """The file on disk behind ``name``: the zip itself, or the file."""
        return self.path if self.kind == "zip" else Path(self.members[name])

    def read(self, name: str) -> bytes:
        """The bytes of ``name``; refused when it carries an official name but not the
        official content, or is larger than :data:`MAX_FILE_BYTES`."""
        if name not in self.members:
            raise FileNotFoundError(f"{self.path} has no {name}")
        ref = self.members[name]
        if self._zip is not None:
            _capped(self._zip.getinfo(ref).file_size, f"{ref} in {self.path}")
            with self._zip.open(ref) as member:  # stops at the declared size, CRC-checked
                data = member.read(MAX_FILE_BYTES + 1)
            _capped(len(data), f"{ref} in {self.path}")
        else:
            with Path(ref).open("rb") as handle:  # the size and the bytes of one open file
                _capped(os.fstat(handle.fileno()).st_size, str(ref))
                data = handle.read(MAX_FILE_BYTES + 1)
            _capped(len(data), str(ref))
        if not self.trusted:
            real = self.real.get(name, name)
            actual = self.read_sha256[real] = sha256_bytes(data)
            expected = _inner_sha256(self.spec, real)
            if expected is not None and actual != expected:
                raise ChecksumError(
                    f"{self.path}: {real} is named like the official {_inner_key(self.spec, real)} "
                    f"of {self.spec.archive}, but its sha256 is {actual}, not {expected} "
                    "(recbook's registry): it is damaged, incomplete or another version. "
                    f"Download {self.spec.archive} again; if you changed the file on purpose, "
                    "rename it and it is used as an unverified copy (with a warning)."
                )
        return data

    def unverified(self) -> dict[str, str]:
        """``{file: sha256}`` of the files read that the registry has no hash for."""
        if self.trusted:
            return {}
        return {
            n: sha for n, sha in self.read_sha256.items() if _inner_sha256(self.spec, n) is None
        }


def _inner_key(spec: Spec, name: str) -> str:
    """Registry key of a file inside the official archive: its path in the zip."""
    return f"{spec.folder}/{name}" if spec.folder else name


def _inner_sha256(spec: Spec, name: str) -> str | None:
    entry = entries().get(_inner_key(spec, name))
    return entry[0] if entry else None


def open_copy(spec: Spec, path: str | os.PathLike | None) -> tuple[Files, dict[str, Any]]:
    """The files to parse plus provenance: the verified official archive when ``path`` is
    None, else the user's copy. Call :func:`record_verification` once everything has been read."""
    sha, url = entries()[spec.archive]
    info: dict[str, Any] = {
        "source_url": url,
        "homepage": spec.homepage,
        "licence": spec.licence,
        "citation": spec.citation,
    }
    if path is None:
        archive = _official_archive(spec)
        files = Files(archive, spec, official=True)  # hashes the very bytes it parses
        info.update(file=str(archive), sha256=sha, verified=True)
        return files, info

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise (TypeError if not isinstance(path, (str, os.PathLike)) else ValueError)(
            f"path must name a file or folder (the {spec.archive} zip, the folder extracted from "
            f"it, or its {spec.main} file), got {path!r}; pass path=None to download it"
        )
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"path={str(path)!r} does not exist; pass the {spec.archive} zip, the folder "
            f"extracted from it, or its {spec.main} file"
        )
    nested = p.is_dir() and not (p / spec.main).is_file() and not any(p.glob(f"*/{spec.main}"))
    if nested and (p / spec.archive).is_file():  # a folder that holds the downloaded zip
        p = p / spec.archive
    files = Files(p, spec)
    info["file"] = str(files.local_file(spec.main))
    if files.kind == "zip":
        actual = files.archive_sha256
        if actual == sha:
            files.trusted = True
            info.update(sha256=actual, verified=True)
        elif p.name == spec.archive:
            raise ChecksumError(
                f"{p} is named like the official {spec.archive} but its sha256 is {actual}, "
                f"not {sha} (recbook's registry): it is damaged, incomplete or another version. "
                f"Download it again from {url}; if you changed it on purpose, rename it and it "
                "is used as an unverified copy (with a warning)."
            )
        else:
            info["sha256"] = actual
    return files, info


def record_verification(files: Files, info: dict[str, Any], stacklevel: int = 3) -> None:
    """After parsing: record in ``info`` whether every file read matched the registry, and
    warn with each unmatched file's sha256 when one did not."""
    if files.trusted:
        return
    main = files.real.get(files.spec.main, files.spec.main)
    info.setdefault("sha256", files.read_sha256.get(main))
    info["files_sha256"] = dict(files.read_sha256)
    unverified = files.unverified()
    info["verified"] = not unverified
    if unverified:
        listed = ", ".join(f"{n} (sha256 {sha})" for n, sha in unverified.items())
        warnings.warn(
            f"{files.spec.name}: using {files.path} as an unverified local copy: recbook's "
            f"registry has no hash for {listed}, so it cannot tell this from the official "
            f"{files.spec.archive} (sha256 {entries()[files.spec.archive][0]}) and results "
            "may differ from published ones. Load the official zip to have it verified.",
            UnverifiedDataWarning,
            stacklevel=stacklevel,
        )
