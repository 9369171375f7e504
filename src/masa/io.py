"""Crash-safe file output: every stage writes through these so a killed job never leaves a half file.

Files that are read back to skip work (rollout cache entries, checkpoints, candidate records, Parquet) also
carry a check a reader verifies, so a damaged file is detected and recomputed, never used: JSON records embed
the sha256 of their own content, Parquet files carry page checksums and a footer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import yaml

CHECKSUM_KEY = "sha256"


class FileFormatError(ValueError):
    """A file (or reply) that does not follow its format. The message names the file, the position in it (a
    JSON line and column, or the path inside the document such as ``task_specific_skills.boil[2].principle``)
    and what was expected there."""


class CorruptFileError(ValueError):
    """A file that is truncated or altered; the message names it and how to get it rebuilt."""


def current_umask() -> int:
    """The process's umask: from /proc on Linux, which only reads it; elsewhere by setting it and straight
    back (``os.umask`` cannot read without writing, and another thread may create a file in between)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file in ``path``'s folder: on a clean exit it is fsynced and renamed over
    ``path``, on an error removed. Writers that stream (``torch.save`` of a large state) use it directly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes it 0600; a plain open() honours the umask
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(Path(path), json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def read_text(path: str | Path) -> str:
    """A file's UTF-8 text; undecodable bytes raise FileFormatError naming the file, the byte offset and the
    encoding expected, instead of a bare UnicodeDecodeError."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise FileFormatError(
            f"{path}: not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start} (line {line}) "
            f"({err.reason}); save the file as UTF-8"
        ) from err


def read_json(path: str | Path) -> Any:
    return json.loads(read_text(path))


def write_yaml(path: str | Path, data: Any) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def read_yaml(path: str | Path) -> Any:
    return yaml.safe_load(read_text(path))


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases: shared files are untrusted, and an alias lets 300
    bytes expand into megabytes ("billion laughs"); no card or skill front matter needs one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases (*name) are not allowed in this file", mark
            )
        return super().compose_node(parent, index)


def load_yaml(
    text: str, source: str, error: type[FileFormatError] = FileFormatError, aliases: bool = False
) -> Any:
    """YAML from an untrusted file, aliases refused unless ``aliases``; a bad file raises ``error`` naming
    it, the line and the column."""
    try:
        return yaml.load(text, Loader=yaml.SafeLoader if aliases else _NoAliasLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise error(f"{source}: not valid YAML at {where}: {err.problem}") from err
    except yaml.YAMLError as err:
        raise error(f"{source}: not valid YAML: {err}") from err


def check_yaml_syntax(path: str | Path) -> None:
    """Raise ``FileFormatError`` with the line and column of a YAML syntax error in ``path``.

    Snakemake's own message for a config file says only "not valid JSON or YAML"; the Snakefile calls this
    before its ``configfile:``. A config is the user's own file, so anchors and aliases stay allowed.
    """
    load_yaml(read_text(path), str(path), aliases=True)


def _content_digest(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_checked_json(path: str | Path, data: dict[str, Any]) -> None:
    """``write_json`` with the sha256 of the content embedded under ``"sha256"``."""
    write_json(path, {**data, CHECKSUM_KEY: _content_digest(data)})


def read_checked_json(path: str | Path) -> dict[str, Any]:
    """The content written by ``write_checked_json`` (without its checksum).

    Raises CorruptFileError for a file that does not parse or whose checksum does not match. A record with no
    checksum at all predates checksums and is accepted as it is.
    """
    try:
        data = read_json(path)
    except (json.JSONDecodeError, FileFormatError) as err:
        raise CorruptFileError(f"{path}: truncated or damaged JSON ({err})") from err
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if CHECKSUM_KEY not in data:
        return data
    stored = data.pop(CHECKSUM_KEY)
    if stored != _content_digest(data):
        raise CorruptFileError(f"{path}: content does not match its sha256 (the file was altered or damaged)")
    return data


def write_parquet(path: str | Path, table: Any) -> None:
    """A pyarrow Table as Parquet with page checksums, written atomically."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, write_page_checksum=True)
    atomic_write_bytes(Path(path), buffer.getvalue())


def read_parquet(path: str | Path) -> Any:
    """A Parquet file as a pyarrow Table, its footer and page checksums verified.

    Raises CorruptFileError naming the file: a consumer cannot rebuild another rule's output, so the message
    says how to have it rebuilt.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise CorruptFileError(
            f"{path}: truncated or damaged Parquet ({err}); delete it and re-run so the rule that writes it "
            "rebuilds it"
        ) from err
