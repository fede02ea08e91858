"""Filesystem plumbing shared by the readers and writers: fsspec URLs, claims, no-replace publish."""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import functools
import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from daskflow._errors import DataError, OutputError
from daskflow._retry import retry

__all__ = ["open_filesystem", "atomic_output", "with_retries", "replace_file", "replace_file_prefix",
           "SUCCESS_MARKER", "PendingOutput", "Publication", "OutputClaimed"]

log = logging.getLogger("daskflow")

#: Written last into every published directory; readers may look for it.
SUCCESS_MARKER = "_SUCCESS"

# Protocols whose fsspec implementation lives in an optional package, with the extra
# that installs it (lazy optional imports with an install hint: docs/development.md).
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure",
           "abfss": "azure"}


def own_options(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A deep copy of ``storage_options`` to hand to fsspec, s3fs or Dask.

    botocore rewrites a ``config_kwargs.retries`` dict in place (``max_attempts`` becomes
    ``total_max_attempts``, ``mode`` is added): without a copy the caller's config would
    change under it, and a run's saved config.yaml would no longer be what the user wrote.
    """
    return copy.deepcopy(dict(storage_options or {}))


def open_filesystem(uri: str, storage_options: Mapping[str, Any] | None = None
                    ) -> tuple[fsspec.AbstractFileSystem, str]:
    """Resolve ``uri`` to an fsspec filesystem and a path inside it.

    Raises
    ------
    DataError
        The protocol is unknown or its optional package is not installed.
    """
    try:
        return fsspec.core.url_to_fs(uri, **own_options(storage_options))
    except ImportError as exc:
        protocol = uri.split("://", 1)[0]
        extra = _EXTRAS.get(protocol)
        hint = f"install it with: pip install 'daskflow[{extra}]'" if extra else str(exc)
        raise DataError(f"reading {uri!r} needs the fsspec driver for {protocol}://, which is not "
                        f"installed: {hint}") from exc
    except ValueError as exc:
        raise DataError(f"cannot open {uri!r}: {exc}. Use a local path or an fsspec URL such as "
                        "file://, memory://, s3://, gcs://, abfs://") from exc


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def replace_file(fs: fsspec.AbstractFileSystem, path: str, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that a reader, or a process killed meanwhile, finds the old
    file whole or the new one whole, never a truncated one.

    On a local disk the bytes go to a hidden file beside ``path`` (created with ``mode``
    when given, e.g. 0o600, from its first byte), flushed to disk, then renamed over it
    (atomic on POSIX); on an object store a single PUT is already atomic.
    """
    if not _is_local(fs):
        fs.pipe_file(path, data)
        return
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f"{replace_file_prefix(name)}{uuid.uuid4().hex[:8]}")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        with os.fdopen(descriptor, "wb") as handle:
            if mode is not None:
                os.fchmod(descriptor, mode)  # whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def replace_file_prefix(name: str) -> str:
    """How the temporaries of :func:`replace_file` for a file ``name`` begin: a process killed
    mid-write leaves one behind, which the file's single writer may remove."""
    return f".{name}.tmp-"


def with_retries(action: Callable[[], Any], *, what: str, attempts: int = 3, delay: float = 0.5) -> Any:
    """Run a store operation with :func:`daskflow._retry.retry`: every failure but a final answer
    (a missing file, bad permissions, a directory where a file was expected) is retried."""
    return retry(action, what=what, attempts=attempts, delay=delay, transient=_store_transient)


def _store_transient(exc: Exception) -> bool:
    # Stores raise their own exception types for network trouble; these answers do not change.
    return not isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError)


# --------------------------------------------------------------------------------------------
# Publishing: claim the destination, write aside, publish without replacing anything.
# The protocol is described in docs/architecture.md ("Commit protocol").

#: ``renameat2`` flags (linux/fs.h): fail if the destination exists; swap two paths.
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_AT_FDCWD = -100


def _renameat2(source: str, destination: str, flags: int) -> bool:
    """``renameat2(2)``; False where the kernel, libc or filesystem lacks it (then fall back).

    ``os.rename`` silently replaces an *empty* destination directory, so it cannot be the
    commit of a result that must never replace anything.
    """
    function = _libc_renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # e.g. a filesystem without the flag (some FUSE and network mounts)
    raise OSError(code, os.strerror(code), destination)


@functools.cache
def _libc_renameat2() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2  # glibc >= 2.28; absent on macOS and musl before 1.2.5
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _rename_noreplace(source: str, destination: str) -> None:
    """Move directory ``source`` to ``destination``; FileExistsError if anything is there."""
    if _renameat2(source, destination, _RENAME_NOREPLACE):
        return
    # Fallback: create the destination exclusively, then rename onto that empty directory.
    # If someone writes into it meanwhile, rename fails (ENOTEMPTY) instead of replacing.
    os.mkdir(destination)
    try:
        os.rename(source, destination)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.rmdir(destination)  # only succeeds while it is still our empty directory
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(exc.errno, exc.strerror, destination) from exc
        raise


def _replace_directory(source: str, destination: str) -> None:
    """Put directory ``source`` at ``destination``, whose old content is removed only afterwards."""
    if _renameat2(source, destination, _RENAME_EXCHANGE):
        shutil.rmtree(source)  # the old result, now under the temporary name
        return
    aside = f"{destination}.old-{uuid.uuid4().hex[:12]}"
    os.rename(destination, aside)
    try:
        _rename_noreplace(source, destination)
    except BaseException:
        os.rename(aside, destination)
        raise
    shutil.rmtree(aside)


def _process_alive(pid: int, started: float | None) -> bool:
    """Whether process ``pid`` on this host is the one that wrote a claim (not a reused pid)."""
    try:
        import psutil
    except ImportError:  # psutil comes with distributed; without it, trust the pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True
    return started is None or abs(created - started) < 2.0


def _this_process_started() -> float | None:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - the start time only guards against pid reuse
        return None


class OutputClaimed(OutputError):
    """The destination is claimed by another writer (see :attr:`claim` for who)."""

    def __init__(self, message: str, claim: Mapping[str, Any] | None, *, stale: bool) -> None:
        super().__init__(message)
        #: The claim's record (owner, pid, host, since, work), or None if unreadable.
        self.claim = dict(claim) if claim is not None else None
        #: True when its writer is known to have died (same host, process gone).
        self.stale = stale


class PendingOutput:
    """A directory result being written aside, to be published at ``uri`` without replacing.

    Creating one claims ``uri`` (an exclusively created ``.<name>.claim`` beside it, which
    names the writer: owner, pid, host, time) and creates the temporary directory
    :attr:`tmp_uri` to write in. :meth:`publish` then moves the result into place with
    no-replace semantics and :meth:`release` drops the claim; :meth:`discard` removes
    everything instead. :func:`atomic_output` is the context-manager form.

    Parameters
    ----------
    uri
        The destination directory (local path or fsspec URL).
    overwrite
        Replace an existing result at ``uri``; the old one is removed only once the new one
        is complete (locally by an atomic exchange of the two directories).
    reuse
        The temporary directory of an earlier attempt to continue in (``--resume``). A claim
        left by that attempt's dead process is taken over.
    owner
        Who writes (a run id), recorded in the claim and named to anyone who loses a race.
    label, elsewhere
        How messages name the destination, and the alternative to it they suggest.
    private
        Create the temporary directory owner-only (0700) on local disks.
    resumable
        Messages about an abandoned attempt suggest ``--resume`` (run directories).
    take_over
        An owner whose *stale* claim (its process gone) may be taken over, its unfinished
        temporary directory removed: a resumed run reclaims the outputs of its own killed
        attempt.

    Raises
    ------
    OutputError
        ``uri`` exists (and ``overwrite`` is false) or cannot be written;
        :class:`OutputClaimed` when another writer holds its claim.
    """

    def __init__(self, uri: str, storage_options: Mapping[str, Any] | None = None, *,
                 overwrite: bool = False, reuse: str | None = None, owner: str | None = None,
                 label: str | None = None, elsewhere: str = "choose another location", private: bool = False,
                 resumable: bool = False, take_over: str | None = None) -> None:
        self.uri = uri
        self.overwrite = overwrite
        self.storage_options = own_options(storage_options)
        self.label = label or f"output {uri!r}"
        self.elsewhere = elsewhere
        self.fs, path = open_filesystem(uri, storage_options)
        self.path = path.rstrip("/")
        self.local = _is_local(self.fs)
        self.parent, _, self.name = self.path.rpartition("/")
        self.claim_path = self._beside(f".{self.name}.claim")
        self.resumable = resumable
        self.private = private
        self.take_over = take_over
        self.state = "claiming"
        self.published = False
        self._token = uuid.uuid4().hex
        if reuse is not None:
            self.tmp_path = self._reused(reuse)
        else:
            self.tmp_path = self._beside(f".{self.name}.tmp-{uuid.uuid4().hex[:12]}")
        self._refuse_existing()
        self._make_parent()
        self._claim(owner, taking_over=reuse is not None)
        self.state = "claimed"
        try:
            self._refuse_existing()  # it may have appeared before the claim was ours
            self._make_tmp(private)
        except BaseException:
            self._drop_claim()
            raise
        self.state = "open"

    # -- paths -------------------------------------------------------------------------------
    def _beside(self, name: str) -> str:
        return f"{self.parent}/{name}" if self.parent else name

    def _shown(self, path: str) -> str:
        return path if self.local else self.fs.unstrip_protocol(path)

    @property
    def tmp_uri(self) -> str:
        """Where to write the result (a local path or a URL of the same store)."""
        return self._shown(self.tmp_path)

    def _reused(self, reuse: str) -> str:
        reuse_path = open_filesystem(reuse, self.storage_options)[1]
        reuse_path = reuse_path.rstrip("/")
        parent, _, name = reuse_path.rpartition("/")
        if parent != self.parent or not name.startswith(f".{self.name}.tmp-") or \
                not self.fs.isdir(reuse_path):
            raise OutputError(f"{reuse!r} is not an unfinished attempt at {self.uri!r}: expected a "
                              f"directory named .{self.name}.tmp-* beside it")
        return reuse_path

    # -- claim -------------------------------------------------------------------------------
    def _record(self, owner: str | None) -> dict[str, Any]:
        return {"owner": owner, "pid": os.getpid(), "host": socket.gethostname(),
                "pid_started": _this_process_started(),
                "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "work": self.tmp_path.rpartition("/")[2], "token": self._token}

    def _claim(self, owner: str | None, *, taking_over: bool) -> None:
        data = json.dumps(self._record(owner), indent=1).encode()
        for _ in range(3):  # a claim removed between our attempt and our read: try again
            try:
                _create_exclusive(self.fs, self.claim_path, data, local=self.local)
                return
            except FileExistsError:
                pass
            except OSError as exc:
                raise OutputError(f"cannot write under {self.uri!r} ({exc.strerror or exc}): choose a "
                                  "writable location or fix its permissions") from exc
            record = self._read_claim()
            if record is _GONE:
                continue
            stale = self._is_stale(record)
            mine = self.tmp_path.rpartition("/")[2]
            if stale and isinstance(record, dict) and (
                    (taking_over and record.get("work") == mine) or
                    (self.take_over is not None and record.get("owner") == self.take_over)):
                if self._take_over() and record.get("work") and record["work"] != mine:
                    with contextlib.suppress(Exception):  # the dead attempt's unfinished copy
                        self.fs.rm(self._beside(str(record["work"])), recursive=True)
                continue
            raise OutputClaimed(self._claimed_message(record, stale), record if isinstance(record, dict)
                                else None, stale=stale)
        raise OutputError(f"cannot claim {self.label}: its claim {self._shown(self.claim_path)} keeps "
                          "changing; another writer is competing for it, choose another location")

    def _read_claim(self) -> Any:
        try:
            with self.fs.open(self.claim_path, "rb") as handle:
                record = json.loads(handle.read().decode())
        except FileNotFoundError:
            return _GONE
        except (OSError, ValueError, UnicodeDecodeError):
            return None  # half-written by a writer that died at once, or not ours
        return record if isinstance(record, dict) else None

    @staticmethod
    def _is_stale(record: Any) -> bool:
        if not isinstance(record, dict) or record.get("host") != socket.gethostname():
            return False  # another machine's process: its liveness cannot be checked from here
        pid = record.get("pid")
        return isinstance(pid, int) and not _process_alive(pid, record.get("pid_started"))

    def _claimed_message(self, record: Any, stale: bool) -> str:
        claim = self._shown(self.claim_path)
        if not isinstance(record, dict):
            return (f"{self.label} is claimed by another writer ({claim} exists but cannot be read): if "
                    f"no run is writing it, remove {claim}; or {self.elsewhere}")
        who = f"run {record['owner']}" if record.get("owner") else "another daskflow process"
        where = f"pid {record.get('pid')} on {record.get('host')}, since {record.get('since')}"
        if not stale:
            wait = "wait for it to finish, or " if record.get("host") == socket.gethostname() else \
                f"if that process is no longer running, remove {claim}; or "
            return f"{self.label} is being written by {who} ({where}): {wait}{self.elsewhere}"
        work = self._beside(str(record.get("work", "")))
        if record.get("work") and self.fs.exists(work):
            shown = self._shown(work)
            resume = f"resume it with --resume {shown}, or " if self.resumable else ""
            return (f"{self.label} is claimed by {who} ({where}), which is no longer running; its "
                    f"unfinished working directory {shown} is kept: {resume}remove both "
                    f"(rm -r {shown} {claim}) to start again")
        return (f"{self.label} is claimed by {who} ({where}), which is no longer running: remove the "
                f"stale claim (rm {claim}) to start again")

    def _take_over(self) -> bool:
        """Remove a stale claim; True if this process removed it (then create ours)."""
        # Renaming the stale claim away is atomic: of two resumers only one succeeds.
        stale = f"{self.claim_path}.stale-{uuid.uuid4().hex[:8]}"
        try:
            if self.local:
                os.rename(self.claim_path, stale)
            else:
                self.fs.mv(self.claim_path, stale)
        except FileNotFoundError:
            return False
        with contextlib.suppress(Exception):
            self.fs.rm(stale)
        return True

    def _drop_claim(self) -> bool:
        """Remove the claim if it is still ours; False if that failed (it is then left)."""
        record = self._read_claim()
        if isinstance(record, dict) and record.get("token") != self._token:
            return True  # not ours (taken over after we were presumed dead): leave it
        if record is _GONE:
            return True
        try:
            self.fs.rm(self.claim_path)
        except Exception:  # noqa: BLE001 - reported by the caller as something left behind
            return False
        return True

    # -- directories -------------------------------------------------------------------------
    def _refuse_existing(self) -> None:
        if not self.local:
            self.fs.invalidate_cache()
        if not self.overwrite and self.fs.exists(self.path):
            raise OutputError(f"{self.label} already exists: {self.elsewhere}, or delete it if it is a "
                              "result you no longer need")

    def _make_parent(self) -> None:
        if not self.parent:
            return
        try:
            self.fs.makedirs(self.parent, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write under {self.uri!r} ({exc.strerror or exc}): choose a "
                              "writable location or fix its permissions") from exc

    def _make_tmp(self, private: bool) -> None:
        try:
            if self.local:
                with contextlib.suppress(FileExistsError):  # an attempt being resumed
                    os.mkdir(self.tmp_path, 0o700 if private else 0o777)
                if private:
                    os.chmod(self.tmp_path, 0o700)
            else:
                self.fs.makedirs(self.tmp_path, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write under {self.uri!r} ({exc.strerror or exc}): choose a "
                              "writable location or fix its permissions") from exc

    # -- outcome -----------------------------------------------------------------------------
    def publish(self) -> None:
        """Move the finished result to ``uri``; never replaces a result unless ``overwrite``.

        The claim is kept (call :meth:`release`) so that a caller publishing several outputs
        together still owns every destination until all are in place. On failure the
        temporary directory and the claim are removed and :class:`OutputError` says why.
        """
        if self.state != "open":
            raise RuntimeError(f"publish() of an output that is {self.state}")
        try:
            if self.local:
                self._publish_local()
            else:
                self._publish_objects()
        except OutputError:
            self.discard()
            raise
        except FileExistsError as exc:
            left = self.discard()
            raise OutputError(f"{self.label} appeared while this run was writing it (created by something "
                              f"other than daskflow, which claims a destination before writing): nothing "
                              f"was published{left}; move it away, or {self.elsewhere}") from exc
        except OSError as exc:
            left = self.discard()
            parent = self._shown(self.parent) if self.parent else "."
            why = "is not writable" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else \
                "could not take it"
            raise OutputError(f"cannot publish {self.label}: the directory {parent} {why} "
                              f"({exc.strerror or exc}); nothing was published{left}. Make it writable, or "
                              "choose another location") from exc
        self.state = "published"
        self.published = True

    def _publish_local(self) -> None:
        os.close(os.open(os.path.join(self.tmp_path, SUCCESS_MARKER), os.O_WRONLY | os.O_CREAT,
                         0o600 if self.private else 0o666))
        if self.overwrite and os.path.lexists(self.path):
            try:
                _replace_directory(self.tmp_path, self.path)
                return
            except FileNotFoundError:
                pass  # removed meanwhile: publish as new
        _rename_noreplace(self.tmp_path, self.path)

    def _publish_objects(self) -> None:
        # No directory rename on object stores: copy, then write the marker with a conditional
        # create as the commit point. The claim keeps other daskflow writers out meanwhile.
        self.fs.invalidate_cache()
        if self.fs.exists(self.path):
            if not self.overwrite:
                raise FileExistsError(errno.EEXIST, "exists", self.path)
            with contextlib.suppress(FileNotFoundError):  # readers stop trusting the old one first
                self.fs.rm(f"{self.path}/{SUCCESS_MARKER}")
            self.fs.rm(self.path, recursive=True)
        for file in sorted(self.fs.find(self.tmp_path)):
            if file.rpartition("/")[2] != SUCCESS_MARKER:
                self.fs.copy(file, self.path + file[len(self.tmp_path):])
        _create_exclusive(self.fs, f"{self.path}/{SUCCESS_MARKER}", b"", local=False)
        with contextlib.suppress(Exception):
            self.fs.rm(self.tmp_path, recursive=True)

    def release(self) -> None:
        """Drop the claim (after :meth:`publish`, or to give up a destination never written)."""
        self._drop_claim()
        if self.state in ("open", "claimed"):
            with contextlib.suppress(Exception):
                self.fs.rm(self.tmp_path, recursive=True)
            self.state = "discarded"

    def discard(self, *, keep: bool = False) -> str:
        """Remove the unpublished result and the claim, or with ``keep`` leave both for a resume.

        Returns
        -------
        str
            "" when everything is gone, else "; left behind: ..." for a message (a
            directory that is no longer writable cannot be cleaned).
        """
        if self.state in ("published", "discarded"):
            return ""
        self.state = "discarded"
        if keep:
            return ""
        left = []
        try:
            if self.fs.exists(self.tmp_path):
                self.fs.rm(self.tmp_path, recursive=True)
        except Exception:  # noqa: BLE001 - reported, not raised: the caller is already failing
            left.append(self._shown(self.tmp_path))
        if not self._drop_claim():
            left.append(self._shown(self.claim_path))
        return f" (left behind, remove when writable: {', '.join(left)})" if left else ""

    def unpublish(self) -> None:
        """Remove a result this object published (a later part of the same commit failed)."""
        if self.published:
            with contextlib.suppress(FileNotFoundError):
                if self.local:
                    shutil.rmtree(self.path)
                else:
                    self.fs.rm(self.path, recursive=True)
            self.published = False
        self._drop_claim()
        self.state = "discarded"


_GONE = object()  # a claim that disappeared while it was being read


def _create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes, *, local: bool) -> None:
    """Create ``path`` holding ``data``; FileExistsError if it exists, atomically where possible.

    Local disks: ``O_CREAT | O_EXCL``. Object stores: a conditional write (``If-None-Match:
    *`` on S3, which s3fs sends for mode ``"xb"``). A store whose driver does not enforce an
    exclusive mode gets only the existence check before it, which is not atomic
    (docs/architecture.md).
    """
    if local:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return
    # Checked first as well: some drivers accept mode "xb" but do not enforce it.
    fs.invalidate_cache()
    if fs.exists(path):
        raise FileExistsError(errno.EEXIST, "exists", path)
    try:
        with fs.open(path, "xb") as handle:
            handle.write(data)
    except (ValueError, NotImplementedError):  # the driver has no exclusive mode
        fs.pipe_file(path, data)


class Publication:
    """Outputs written aside during a run, published together after the run's own directory.

    The experiment runner claims every external output up front (:meth:`claim`),
    :func:`~daskflow.io.write_parquet` writes into them (``publish=``), and the runner
    calls :meth:`commit` once its run directory is in place. If any output fails to
    publish, the ones already published are removed again and the rest discarded. As a
    context manager it commits on success and aborts on an exception.
    """

    def __init__(self, inside: str | os.PathLike[str] | None = None) -> None:
        #: Outputs under this local directory (the run's own working directory) are
        #: published as soon as they are written: the directory around them is the unit
        #: that is published later.
        self.inside = os.path.abspath(inside) if inside is not None else None
        self._outputs: dict[str, PendingOutput] = {}
        self._written: set[str] = set()
        self._published: list[PendingOutput] = []

    def claim(self, uri: str, storage_options: Mapping[str, Any] | None = None, *,
              overwrite: bool = False, owner: str | None = None,
              take_over: str | None = None) -> PendingOutput:
        """Claim ``uri`` now, for a result written later; raises like :class:`PendingOutput`."""
        if uri not in self._outputs:
            self._outputs[uri] = PendingOutput(uri, storage_options, overwrite=overwrite, owner=owner,
                                               take_over=take_over)
        return self._outputs[uri]

    def output(self, uri: str, storage_options: Mapping[str, Any] | None = None, *,
               overwrite: bool = False) -> PendingOutput:
        """The claimed output to write ``uri``'s result in (claimed now if it was not yet)."""
        if uri in self._written:
            raise OutputError(f"output {uri!r} is written twice by one run: give each result its own uri")
        pending = self.claim(uri, storage_options, overwrite=overwrite)
        self._written.add(uri)
        return pending

    def written(self, pending: PendingOutput) -> None:
        """``pending``'s result is complete: publish it now if it lies :attr:`inside`."""
        if self.inside is None or not pending.local or \
                os.path.commonpath([self.inside, os.path.abspath(pending.path)]) != self.inside:
            return
        pending.publish()
        pending.release()
        del self._outputs[pending.uri]

    def commit(self) -> None:
        """Publish every written output, release every claim; all or nothing."""
        try:
            for uri, pending in self._outputs.items():
                if uri in self._written:
                    pending.publish()
                    self._published.append(pending)
        except BaseException:
            self.rollback()
            raise
        for pending in self._outputs.values():
            pending.release()
        self._outputs.clear()

    def abort(self) -> None:
        """Discard every output and release every claim; nothing is published."""
        for pending in self._outputs.values():
            pending.discard()
        self._outputs.clear()

    def rollback(self) -> None:
        """Remove what :meth:`commit` published, discard the rest."""
        for pending in reversed(self._published):
            with contextlib.suppress(Exception):
                pending.unpublish()
        self._published.clear()
        self.abort()

    def __enter__(self) -> Publication:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


@contextlib.contextmanager
def atomic_output(uri: str, storage_options: Mapping[str, Any] | None = None, *,
                  overwrite: bool = False, reuse: str | None = None,
                  owner: str | None = None) -> Iterator[str]:
    """Write a directory result somewhere temporary, then publish it at ``uri``.

    ``uri`` is claimed first (:class:`PendingOutput`): a concurrent writer of the same
    destination fails at once, naming this one. Yields a URL of a fresh temporary
    directory beside ``uri``. When the block exits normally the directory is moved to
    ``uri`` without replacing anything there (on local disks ``renameat2`` with
    ``RENAME_NOREPLACE``; on object stores, which have no directory rename, copy then a
    conditionally created ``_SUCCESS`` marker), unless ``overwrite`` is true, in which case
    the old result is removed only once the new one is complete. When the block raises,
    the temporary directory and the claim are removed and nothing appears at ``uri``.

    ``reuse`` names the temporary directory of an earlier attempt (one a killed process
    left behind) to continue in instead of a fresh one.

    Examples
    --------
    >>> with atomic_output("memory://doc/result") as tmp:   # doctest: +SKIP
    ...     df.to_parquet(tmp)
    """
    pending = PendingOutput(uri, storage_options, overwrite=overwrite, reuse=reuse, owner=owner)
    try:
        yield pending.tmp_uri
    except BaseException:
        pending.discard()
        raise
    pending.publish()
    pending.release()
