"""The ``local`` connection: commands and files on the machine running the runbook."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat as statmod
import subprocess
import tempfile
import threading
import time
from typing import Mapping, Sequence

from ..errors import ActionTimeout, StepFailed
from .base import Become, CommandResult, Connection, FileStat, quote_command

__all__ = ["LocalConnection"]


class LocalConnection(Connection):
    """Runs commands with subprocess (each in its own process group) and files with os."""

    kind = "local"

    def __init__(self, host_name: str = "localhost") -> None:
        super().__init__(host_name)
        self._running: set[subprocess.Popen[bytes]] = set()
        self._running_lock = threading.Lock()
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True
        with self._running_lock:
            procs = list(self._running)
        for proc in procs:
            _kill_group(proc, signal.SIGTERM)
        if procs:
            time.sleep(0.2)
            for proc in procs:
                if proc.poll() is None:
                    _kill_group(proc, signal.SIGKILL)

    def run(self, command: str | Sequence[str], *, stdin: bytes | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None,
            cwd: str | None = None, become: Become | None = None) -> CommandResult:
        shown = quote_command(command)
        if become is not None:
            wrapped, password = become.wrap(shown)
            argv: list[str] = ["/bin/sh", "-c", wrapped]
            if password is not None:
                stdin = password + (stdin or b"")
        elif isinstance(command, str):
            argv = ["/bin/sh", "-c", command]
        else:
            argv = [str(part) for part in command]
        full_env = None
        if env:
            full_env = dict(os.environ)
            full_env.update(env)
        if cwd is not None and not os.path.isdir(cwd):
            return CommandResult(shown, 1, "", f"chdir: {cwd}: no such directory\n", 0.0)
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else
                                    subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=full_env, cwd=cwd,
                                    start_new_session=True)
        except FileNotFoundError:
            return CommandResult(shown, 127, "", f"{argv[0]}: command not found\n",
                                 time.perf_counter() - start)
        except PermissionError:
            return CommandResult(shown, 126, "", f"{argv[0]}: permission denied\n",
                                 time.perf_counter() - start)
        with self._running_lock:
            self._running.add(proc)
        try:
            try:
                out, err = proc.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                out, err = proc.communicate()
                raise ActionTimeout(f"command timed out after {timeout:.3g}s: {shown}",
                                    result=None) from None
        finally:
            with self._running_lock:
                self._running.discard(proc)
        duration = time.perf_counter() - start
        code = proc.returncode
        if code < 0:
            code = 128 - code
        return CommandResult(shown, code, out.decode("utf-8", "replace"),
                             err.decode("utf-8", "replace"), duration)

    # -- files: native, no commands needed ----------------------------------------
    def put(self, src: str, dest: str, *, mode: int | None = None) -> None:
        with open(src, "rb") as f:
            self.put_bytes(f.read(), dest, mode=mode)

    def put_bytes(self, data: bytes, dest: str, *, mode: int | None = None) -> None:
        folder = os.path.dirname(dest) or "."
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".runbook-")
        except FileNotFoundError:
            raise StepFailed(f"cannot write {dest}: folder {folder} does not exist") from None
        except PermissionError:
            raise StepFailed(f"cannot write {dest}: permission denied") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode if mode is not None else 0o644)
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def get(self, src: str, dest: str) -> None:
        try:
            shutil.copyfile(src, dest)
        except OSError as exc:
            raise StepFailed(f"cannot copy {src}: {exc.strerror}") from None

    def read_bytes(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StepFailed(f"cannot read {path}: {exc.strerror}") from None

    def checksum(self, path: str) -> str | None:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except (FileNotFoundError, IsADirectoryError):
            return None
        return digest.hexdigest()

    def stat(self, path: str) -> FileStat:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return FileStat(exists=False)
        except NotADirectoryError:
            return FileStat(exists=False)
        is_link = statmod.S_ISLNK(st.st_mode)
        return FileStat(exists=True, is_dir=statmod.S_ISDIR(st.st_mode), is_link=is_link,
                        mode=statmod.S_IMODE(st.st_mode), size=st.st_size,
                        owner=_user(st.st_uid), group=_group(st.st_gid),
                        link_target=os.readlink(path) if is_link else None)

    def probe_tcp(self, host: str, port: int, timeout: float = 1.0) -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
