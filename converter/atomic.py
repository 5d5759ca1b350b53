"""Atomic, all-or-nothing output: files are written into a private staging folder beside the
destination, checked there, and only then renamed into place with ``os.replace``.

* A destination that already exists needs ``force=True`` (else :class:`OutputError`, exit 5).
* On any failure (including KeyboardInterrupt) the staging folder and everything in it is
  removed, so nothing half-written is ever left at a destination.
* Durability: writers do not fsync. ``sync_in_background()`` flushes the staged files to disk
  in a thread (fsync waits on the disk, not the CPU) while the caller verifies them;
  ``commit()`` waits for it before any rename, and fsyncs the folder after, so a crash or
  power loss leaves either the old destination or the complete new file.
* A single file is committed with one ``os.replace`` (an existing file is swapped atomically).
  Several files (one per table; ONNX + external data; word2vec + sidecar) are committed one by
  one; existing destinations are first moved aside into the staging folder and moved back if a
  later rename fails, so the set is all-or-nothing as far as the file system allows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from .errors import OutputError


def check_destinations(paths: Iterable[Path], force: bool) -> None:
    """Raise OutputError if a destination exists and ``force`` is False, or its folder is missing."""
    for p in paths:
        if not p.parent.is_dir():
            raise OutputError(f"folder {str(p.parent)!r} does not exist", path=str(p))
        if p.is_dir():
            raise OutputError("is a folder; give a file name", path=str(p))
        if (p.exists() or p.is_symlink()) and not force:
            raise OutputError("exists; use --force to overwrite", path=str(p))


class Staging:
    """A private staging folder in the destinations' folder. ``path(dest)`` is where to write
    the file that will become ``dest``; it keeps dest's base name, so relative references
    between staged files (ONNX external data) already hold."""

    def __init__(self, destinations: list[Path], force: bool) -> None:
        self.destinations = [Path(os.path.abspath(d)) for d in destinations]
        if len(set(self.destinations)) != len(self.destinations):
            raise OutputError("two outputs would get the same file name", path=str(destinations[0]))
        folders = {d.parent for d in self.destinations}
        if len(folders) != 1:
            raise OutputError("all files of one output must be in one folder", path=str(destinations[0]))
        self.force = force
        check_destinations(self.destinations, force)
        self.folder = self.destinations[0].parent
        try:
            self.dir = Path(tempfile.mkdtemp(prefix=f".{self.destinations[0].name}.", suffix=".embconv-tmp",
                                             dir=self.folder))
        except OSError as e:
            raise OutputError(f"cannot write in {str(self.folder)!r}: {e.strerror or e}",
                              path=str(self.destinations[0])) from e
        self.committed = False
        self._sync: threading.Thread | None = None
        self._sync_error: OSError | None = None
        self._sync_started = False

    def sync_in_background(self) -> None:
        """Start flushing every staged file to disk in a thread; ``commit`` waits for it."""
        self.wait_synced()
        self._sync_started = True
        files = [p for p in self.staged() if p.is_file()]

        def run() -> None:
            try:
                for p in files:
                    fd = os.open(p, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except OSError as e:
                self._sync_error = e

        self._sync = threading.Thread(target=run, name="embconv-fsync", daemon=True)
        self._sync.start()

    def wait_synced(self) -> None:
        """Wait for ``sync_in_background`` (OutputError if flushing to disk failed)."""
        if self._sync is not None:
            self._sync.join()
            self._sync = None
        if self._sync_error is not None:
            e, self._sync_error = self._sync_error, None
            raise OutputError(f"cannot flush the output to disk: {e.strerror or e}",
                              path=str(self.destinations[0])) from e

    def _sync_folder(self) -> None:
        try:
            fd = os.open(self.folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems cannot fsync a folder; the renames happened regardless
        finally:
            os.close(fd)

    def path(self, dest: Path | str) -> Path:
        d = Path(os.path.abspath(dest))
        if d not in self.destinations:
            raise ValueError(f"{dest} is not a declared destination")
        return self.dir / d.name

    def staged(self) -> list[Path]:
        return [self.path(d) for d in self.destinations]

    def commit(self) -> list[Path]:
        """Move every staged file into place (all-or-nothing as far as possible)."""
        if not self._sync_started:
            self.sync_in_background()
        self.wait_synced()
        check_destinations(self.destinations, self.force)  # nothing appeared meanwhile
        for d in self.destinations:
            if not self.path(d).is_file():
                raise OutputError("internal error: the file was not written", path=str(d))
        if len(self.destinations) == 1:
            d = self.destinations[0]
            try:
                os.replace(self.path(d), d)
            except OSError as e:
                raise OutputError(f"cannot move the output into place: {e.strerror or e}", path=str(d)) from e
            self.committed = True
            self._sync_folder()
            return [d]
        backup = self.dir / ".previous"
        backup.mkdir()
        moved_aside: list[Path] = []
        placed: list[Path] = []
        try:
            for d in self.destinations:
                if d.exists() or d.is_symlink():
                    os.replace(d, backup / d.name)
                    moved_aside.append(d)
            for d in self.destinations:
                os.replace(self.path(d), d)
                placed.append(d)
        except OSError as e:
            for d in placed:
                try:
                    os.unlink(d)
                except OSError:
                    pass
            for d in moved_aside:
                try:
                    os.replace(backup / d.name, d)
                except OSError:
                    pass
            raise OutputError(f"cannot move the output into place: {e.strerror or e}",
                              path=str(self.destinations[0])) from e
        self.committed = True
        self._sync_folder()
        return list(self.destinations)

    def cleanup(self) -> None:
        if self._sync is not None:
            self._sync.join()  # never delete files a thread still has open
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.cleanup()
