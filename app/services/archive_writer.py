"""The process that writes an export's ZIP file, beside the one that reads and encodes the records.

Why a second process: the build has two halves of about equal cost, encoding tens of thousands
of records (Python code, one core) and copying the media files into the ZIP (reads, writes and
hashing). Two threads of one process could not overlap them: the copying thread waits for the
interpreter lock after each of its many short calls. A separate process can, so on two cores
the build takes about as long as the longer half.

The writer (zip_writer.py, run as a script) owns the archive file; ArchiveWriter starts it and
sends it commands (see zip_writer.py). The spool files it compresses entries from are unnamed
temporary files opened here and passed to it by descriptor, so nothing is left behind by a
crash of either process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from app.services import zip_writer
from app.services.zip_writer import REPORT_INTERVAL_SECONDS

# How the writer is started; the builder appends the archive's path and its time.
WRITER_COMMAND = [sys.executable, "-I", "-S", zip_writer.__file__]


class ArchiveWriterError(RuntimeError):
    """The writer process failed or stopped; the message says how (never with file contents)."""


@dataclass(frozen=True)
class WriterResult:
    byte_size: int
    sha256: str  # of the whole archive file
    media_copied: int  # media files copied (the others had gone from the store meanwhile)
    peak_rss_kib: int | None  # the writer process's own high-water mark, where Linux says


def _unnamed_file(folder: Path) -> IO[bytes]:
    return tempfile.TemporaryFile(dir=folder)  # the caller closes it


class ArchiveWriter:
    """Starts the writer process for `target` and sends it the archive's contents.

    Use it as a context manager: leaving the block without `finish` (an exception in the
    builder) stops the writer, which leaves a file that is not a whole ZIP for the caller to
    remove. The two spool files take what the builder writes for `spooled` entries.
    """

    SPOOLS = ("json", "csv")

    def __init__(self, target: Path, generated_at: datetime) -> None:
        # Unnamed files on the archive's disk, closed in __exit__: gone even after a crash.
        self.spools = {name: _unnamed_file(target.parent) for name in self.SPOOLS}
        self.media_done = 0  # updated by the reader thread as the writer reports
        self._outcome: dict[str, Any] = {}
        self._errors = _unnamed_file(target.parent)
        try:
            self.process = subprocess.Popen(  # noqa: S603 -- our own script, no shell
                [*WRITER_COMMAND, str(target), generated_at.isoformat()],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                pass_fds=[spool.fileno() for spool in self.spools.values()],
            )
        except BaseException:
            for file in (*self.spools.values(), self._errors):
                file.close()
            raise
        self._reader = threading.Thread(target=self._read_reports, daemon=True)
        self._reader.start()

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join()
        streams = (*self.spools.values(), self._errors, self.process.stdin, self.process.stdout)
        for stream in streams:
            if stream is not None:
                with suppress(BrokenPipeError):  # what a dead writer did not read is moot
                    stream.close()

    def copy_media(self, files: Sequence[tuple[str, str]]) -> None:
        """Copy each (source path, name in the archive), in this order, after what came before."""
        if files:
            self._send("".join(json.dumps(["media", s, n]) + "\n" for s, n in files))

    @contextmanager
    def spooled(self, spool: str, name: str) -> Iterator[IO[bytes]]:
        """An entry compressed from what the block writes to the spool file it is given."""
        file = self.spools[spool]
        file.flush()
        start = file.tell()
        yield file
        file.flush()
        command = ["spooled", file.fileno(), start, file.tell() - start, name]
        self._send(json.dumps(command) + "\n")

    def finish(self, manifest: dict[str, Any], on_media: Callable[[int], None]) -> WriterResult:
        """Write the manifest and close the archive; `on_media` hears of progress meanwhile."""
        self._send(json.dumps(["finish", manifest]) + "\n", last=True)
        while self._reader.is_alive():
            self._reader.join(REPORT_INTERVAL_SECONDS)
            on_media(self.media_done)
        self.process.wait()
        self._raise_if_failed()
        done = self._outcome["done"]
        on_media(done["media"])
        return WriterResult(done["size"], done["sha256"], done["copied"], done["peak_rss_kib"])

    def _send(self, text: str, *, last: bool = False) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(text.encode("utf-8"))
            if last:
                self.process.stdin.close()
            else:
                self.process.stdin.flush()
        except BrokenPipeError:  # the writer is gone: say why, if it could
            self.process.wait()
            self._reader.join()
            self._raise_if_failed()
            raise

    def _read_reports(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            if "media" in message:
                self.media_done = message["media"]
            else:
                self._outcome.update(message)

    def _raise_if_failed(self) -> None:
        if "error" in self._outcome:
            raise ArchiveWriterError(self._outcome["error"])
        status = self.process.returncode
        if status != 0 or "done" not in self._outcome:
            how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
            self._errors.seek(max(0, self._errors.seek(0, os.SEEK_END) - 2000))  # the last words
            said = self._errors.read().decode("utf-8", "replace").strip().splitlines()
            raise ArchiveWriterError(f"the writer stopped ({how}) {said[-1] if said else ''}")
