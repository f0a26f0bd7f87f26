"""The SSH connection's file methods, over one lazily opened SFTP session (a mixin)."""

from __future__ import annotations

import os
import posixpath
import secrets
import stat as statmod
import threading
from typing import IO, Any, Callable

import paramiko

from ..errors import StepFailed, TargetError
from .base import Connection, FileStat, sha256_bytes

__all__ = ["SshFiles", "SFTP_CHECKSUM_LIMIT"]

SFTP_CHECKSUM_LIMIT = 1 << 20     # hash files up to this size locally, larger ones remotely


class SshFiles(Connection):
    """put/get/read_bytes/checksum/stat through SFTP; SshConnection supplies the transport.

    Errors become engine errors: StepFailed for the file, Unreachable (via ``_lost``)
    when the transport died."""

    _sftp: paramiko.SFTPClient | None
    _sftp_lock: threading.Lock
    _names: tuple[dict[int, str], dict[int, str]] | None   # uid and gid names, read once

    def _ensure_open(self) -> paramiko.Transport:
        raise NotImplementedError

    def _lost(self, transport: paramiko.Transport, exc: BaseException | None,
              shown: str) -> TargetError:
        raise NotImplementedError

    def _with_sftp(self, action: str, work: Callable[[paramiko.SFTPClient], Any]) -> Any:
        """Run ``work`` on the connection's SFTP session; errors become engine errors."""
        transport = self._ensure_open()
        with self._sftp_lock:
            try:
                if self._sftp is None or self._sftp.get_channel().transport is not transport:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                return work(self._sftp)
            except (FileNotFoundError, PermissionError, IsADirectoryError):
                raise
            except OSError as exc:
                if not transport.is_active():
                    self._sftp = None
                    raise self._lost(transport, exc, action) from exc
                raise StepFailed(f"{self.host_name}: cannot {action}: "
                                 f"{exc.strerror or exc}") from exc
            except (paramiko.SSHException, EOFError) as exc:
                self._sftp = None
                if not transport.is_active():
                    raise self._lost(transport, exc, action) from exc
                raise StepFailed(f"{self.host_name}: cannot {action}: SFTP failed ({exc}); "
                                 f"does sshd have 'Subsystem sftp'?") from exc

    def put(self, src: str, dest: str, *, mode: int | None = None) -> None:
        try:
            with open(src, "rb") as f:
                self._write(f, dest, mode)
        except OSError as exc:
            if exc.filename == src:
                raise StepFailed(f"cannot read {src}: {exc.strerror}") from None
            raise

    def put_bytes(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        import io
        self._write(io.BytesIO(data), dest, mode)

    def _write(self, source: IO[bytes], dest: str, mode: int | None) -> None:
        """Write to a temporary name in dest's folder, set the mode, rename over dest."""
        folder = posixpath.dirname(dest) or "."
        tmp = posixpath.join(folder, f".runbook-{secrets.token_hex(6)}.tmp")

        def work(sftp: paramiko.SFTPClient) -> None:
            try:
                with sftp.open(tmp, "wxb") as remote:
                    remote.chmod(0o644 if mode is None else mode)
                    remote.set_pipelined(True)
                    for chunk in iter(lambda: source.read(1 << 20), b""):
                        remote.write(chunk)
                sftp.posix_rename(tmp, dest)
            except BaseException:
                try:
                    sftp.remove(tmp)
                except Exception:  # the temp file may not exist; the first error matters
                    pass
                raise

        try:
            self._with_sftp(f"write {dest}", work)
        except FileNotFoundError:
            raise StepFailed(f"cannot write {dest} on {self.host_name}: folder {folder} "
                             f"does not exist") from None
        except (PermissionError, IsADirectoryError):
            raise StepFailed(f"cannot write {dest} on {self.host_name}: permission denied"
                             ) from None

    def get(self, src: str, dest: str) -> None:
        part = f"{dest}.runbook-{secrets.token_hex(4)}.part"
        try:
            with open(part, "wb") as f:
                self._with_sftp(f"read {src}", lambda sftp: sftp.getfo(src, f))
            os.replace(part, dest)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            if exc.filename == part:
                raise StepFailed(f"cannot write {dest}: {exc.strerror}") from None
            raise StepFailed(f"cannot copy {src} from {self.host_name}: "
                             f"{exc.strerror or 'no such file'}") from None
        finally:
            if os.path.exists(part):
                os.unlink(part)

    def read_bytes(self, path: str) -> bytes | None:
        def work(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(path, "rb") as f:
                f.prefetch()
                data: bytes = f.read()
                return data

        try:
            content: bytes = self._with_sftp(f"read {path}", work)
            return content
        except FileNotFoundError:
            return None
        except (PermissionError, IsADirectoryError) as exc:
            raise StepFailed(f"cannot read {path} on {self.host_name}: "
                             f"{exc.strerror or 'permission denied'}") from None

    def checksum(self, path: str) -> str | None:
        try:
            st = self._with_sftp(f"stat {path}", lambda sftp: sftp.stat(path))
        except (FileNotFoundError, PermissionError):
            return None
        if not statmod.S_ISREG(st.st_mode or 0):
            return None
        if (st.st_size or 0) > SFTP_CHECKSUM_LIMIT:
            return super().checksum(path)
        data = self.read_bytes(path)
        return None if data is None else sha256_bytes(data)

    def stat(self, path: str) -> FileStat:
        def work(sftp: paramiko.SFTPClient) -> tuple[Any, str | None]:
            st = sftp.lstat(path)
            link = sftp.readlink(path) if statmod.S_ISLNK(st.st_mode or 0) else None
            if self._names is None:
                self._names = (_id_names(sftp, "/etc/passwd"), _id_names(sftp, "/etc/group"))
            return st, link

        try:
            st, link = self._with_sftp(f"stat {path}", work)
        except (FileNotFoundError, PermissionError):
            return FileStat(exists=False)
        users, groups = self._names or ({}, {})
        mode = st.st_mode or 0
        return FileStat(exists=True, is_dir=statmod.S_ISDIR(mode), is_link=statmod.S_ISLNK(mode),
                        mode=statmod.S_IMODE(mode), size=st.st_size,
                        owner=users.get(st.st_uid, str(st.st_uid)),
                        group=groups.get(st.st_gid, str(st.st_gid)), link_target=link)


def _id_names(sftp: paramiko.SFTPClient, path: str) -> dict[int, str]:
    """uid/gid -> name from the target's /etc/passwd or /etc/group (empty if unreadable)."""
    try:
        with sftp.open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return {}
    names: dict[int, str] = {}
    for row in text.splitlines():
        fields = row.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return names
