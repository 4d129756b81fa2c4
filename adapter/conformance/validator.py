"""Client for the offline HAPI FHIR validator in ``tools/fhir-validator``.

One Java process is started per :class:`HapiValidator` and kept for its lifetime; requests
and answers are JSON lines over the process's stdin/stdout (see the tool's README.md)::

    from adapter.conformance import HapiValidator, errors

    with HapiValidator() as v:
        issues = v.validate(resource)                  # list of issue dicts
        assert not errors(issues)

Standard library only. Configuration by environment:

``ADAPTER_VALIDATOR_JAR``
    path of the runnable jar (default: ``tools/fhir-validator/target/fhir-validator-all.jar``,
    built by ``tools/fhir-validator/build.sh``).
``ADAPTER_FHIR_PACKAGES``
    ``os.pathsep``-separated FHIR package folders (default: every folder in
    ``<repo>/../shared/fhir-profiles/``).
``ADAPTER_VALIDATOR_JAVA_OPTS``
    extra JVM options, split on whitespace.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL_DIR = REPO_ROOT / "tools" / "fhir-validator"
BUILD_SCRIPT = TOOL_DIR / "build.sh"
DEFAULT_JAR = TOOL_DIR / "target" / "fhir-validator-all.jar"
DEFAULT_PACKAGES_ROOT = REPO_ROOT.parent / "shared" / "fhir-profiles"
# a fixed young generation: each validation allocates a lot of short-lived garbage
DEFAULT_JVM_OPTS = ("-XX:+UseParallelGC", "-Xms1g", "-Xmn600m", "-Xss4m")

ENV_JAR = "ADAPTER_VALIDATOR_JAR"
ENV_PACKAGES = "ADAPTER_FHIR_PACKAGES"
ENV_JAVA_OPTS = "ADAPTER_VALIDATOR_JAVA_OPTS"


class ValidatorUnavailable(RuntimeError):
    """The validator cannot be started here; ``how_to_fix`` says what would make it work."""

    def __init__(self, reason: str, how_to_fix: str):
        super().__init__(f"{reason} -- {how_to_fix}")
        self.reason = reason
        self.how_to_fix = how_to_fix


class ValidatorError(RuntimeError):
    """The validator process answered a request with an error or stopped unexpectedly."""


# --------------------------------------------------------------------------- discovery


def find_java() -> str:
    """Path of the ``java`` executable (``$JAVA_HOME/bin/java`` first, then ``PATH``)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if not found:
        raise ValidatorUnavailable(
            "no Java runtime found (java is not on PATH and JAVA_HOME is not set)",
            "install a JDK 17 or newer, e.g. `apt-get install openjdk-17-jdk-headless`",
        )
    return found


def jar_path() -> Path:
    """Where the jar is expected: ``$ADAPTER_VALIDATOR_JAR`` or the build output."""
    override = os.environ.get(ENV_JAR)
    return Path(override).expanduser() if override else DEFAULT_JAR


def ensure_built(quiet: bool = True) -> Path:
    """Return the jar, running ``tools/fhir-validator/build.sh`` first if it is missing.

    With ``$ADAPTER_VALIDATOR_JAR`` set nothing is built: that file must exist.
    """
    jar = jar_path()
    if jar.is_file():
        return jar
    if os.environ.get(ENV_JAR):
        raise ValidatorUnavailable(
            f"{ENV_JAR} points to {jar}, which does not exist",
            f"build it with {BUILD_SCRIPT} or unset {ENV_JAR} to use the default build output",
        )
    find_java()  # a clearer message than Maven's when Java is missing
    if not shutil.which("mvn"):
        raise ValidatorUnavailable(
            f"the validator jar {jar} is not built and Maven (mvn) is not installed",
            f"install Maven 3.8+ (`apt-get install maven`) and run {BUILD_SCRIPT}, "
            f"or point {ENV_JAR} at a built fhir-validator-all.jar",
        )
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        cwd=str(TOOL_DIR),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if not quiet:
        print(proc.stdout, end="")
    if proc.returncode != 0 or not jar.is_file():
        tail = "\n".join(proc.stdout.strip().splitlines()[-30:])
        raise ValidatorUnavailable(
            f"building the validator failed (exit {proc.returncode}):\n{tail}",
            f"run {BUILD_SCRIPT} by hand; the first build downloads HAPI FHIR from Maven "
            "Central and needs access to it",
        )
    return jar


def _read_package_json(folder: Path) -> dict[str, Any]:
    try:
        with open(folder / "package" / "package.json", encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def order_packages(folders: Iterable[Path]) -> list[Path]:
    """Dependencies first (by ``package.json``), otherwise by folder name."""
    folders = sorted({Path(f) for f in folders}, key=lambda p: p.name)
    by_name: dict[str, Path] = {}
    deps: dict[Path, set[str]] = {}
    for f in folders:
        meta = _read_package_json(f)
        by_name.setdefault(str(meta.get("name") or f.name.split("#")[0]), f)
        deps[f] = set((meta.get("dependencies") or {}).keys())
    ordered: list[Path] = []
    done: set[Path] = set()

    def visit(f: Path, path: tuple[Path, ...]) -> None:
        if f in done or f in path:
            return
        for name in sorted(deps[f]):
            dep = by_name.get(name)
            if dep is not None:
                visit(dep, path + (f,))
        done.add(f)
        ordered.append(f)

    for f in folders:
        visit(f, ())
    return ordered


def package_folders() -> list[Path]:
    """The FHIR package folders to load: ``$ADAPTER_FHIR_PACKAGES`` or the shared ones."""
    override = os.environ.get(ENV_PACKAGES)
    if override:
        folders = [Path(p).expanduser() for p in override.split(os.pathsep) if p.strip()]
        source = ENV_PACKAGES
    else:
        root = DEFAULT_PACKAGES_ROOT
        if not root.is_dir():
            raise ValidatorUnavailable(
                f"the FHIR package folder {root} does not exist",
                f"put the Danish FHIR packages there (see its README.md) or set {ENV_PACKAGES} "
                f"to {os.pathsep!r}-separated package folders",
            )
        folders = [p for p in root.iterdir() if p.is_dir() and (p / "package").is_dir()]
        source = str(root)
    missing = [str(f) for f in folders if not (f / "package").is_dir()]
    if missing:
        raise ValidatorUnavailable(
            f"not FHIR package folders (no package/ subfolder): {', '.join(missing)}",
            f"fix {ENV_PACKAGES}; each entry is a folder whose package/ holds the JSON resources",
        )
    if not folders:
        raise ValidatorUnavailable(
            f"no FHIR package folders found in {source}",
            "add the Danish FHIR packages (see /work/shared/fhir-profiles/README.md)",
        )
    return order_packages(newest_versions(folders))


def _version_key(version: str) -> tuple:
    """``3.4.0`` > ``2.0.0``; a pre-release (``1.0.0-trial-use``) sorts before its release."""
    main, _, pre = version.partition("-")
    numbers = tuple(int(p) if p.isdigit() else 0 for p in main.split("."))
    return numbers, 0 if pre else 1, pre


def newest_versions(folders: Iterable[Path]) -> list[Path]:
    """One folder per package name: its newest version. Two versions of a package define the
    same canonical URLs with other content (DK Core 2.0.0 and 3.4.0, MedCom core 2.0.1 and
    3.0.1, ...), and which of them a validator would use is not defined; the older ones are
    the dependencies an older guide declares (MedCom Acknowledgement 2.0.3), whose examples
    validate the same against the newer set (``../shared/fhir-profiles/README.md``)."""
    chosen: dict[str, tuple[tuple, Path]] = {}
    for f in folders:
        meta = _read_package_json(f)
        name = str(meta.get("name") or f.name.split("#")[0])
        version = str(meta.get("version") or (f.name.split("#", 1)[1] if "#" in f.name else "0"))
        key = _version_key(version)
        if name not in chosen or key > chosen[name][0]:
            chosen[name] = (key, f)
    return [f for _, f in chosen.values()]


# --------------------------------------------------------------------------- helpers


def errors(issues: Iterable[dict]) -> list[dict]:
    """The issues of severity ``error``."""
    return [i for i in issues if i.get("severity") == "error"]


def format_issues(issues: Iterable[dict]) -> str:
    """One readable line per issue, for assertion messages."""
    return "\n".join(
        f"{i.get('severity')}: {i.get('location')} (line {i.get('line')}): {i.get('message')}"
        for i in issues
    )


# --------------------------------------------------------------------------- client


class HapiValidator:
    """A long-lived HAPI FHIR validator process; use as a context manager.

    ``validate`` and ``validate_many`` may be called from several threads; requests are
    answered one after the other by the single Java process.
    """

    def __init__(
        self,
        packages: Iterable[str | os.PathLike] | None = None,
        jar: str | os.PathLike | None = None,
        java: str | None = None,
        jvm_options: Iterable[str] | None = None,
        startup_timeout: float = 300.0,
        request_timeout: float | None = 600.0,
        build: bool = True,
    ):
        self.java = java or find_java()
        if jar is not None:
            self.jar = Path(jar)
        elif build:
            self.jar = ensure_built()
        else:
            self.jar = jar_path()
        if not self.jar.is_file():
            raise ValidatorUnavailable(
                f"the validator jar {self.jar} does not exist",
                f"run {BUILD_SCRIPT} or set {ENV_JAR}",
            )
        self.packages = [Path(p) for p in packages] if packages is not None else package_folders()
        for p in self.packages:
            if not (p / "package").is_dir():
                raise ValidatorUnavailable(
                    f"{p} is not a FHIR package folder (no package/ subfolder)",
                    "pass npm-style FHIR package folders",
                )
        opts = list(jvm_options) if jvm_options is not None else list(DEFAULT_JVM_OPTS)
        opts += os.environ.get(ENV_JAVA_OPTS, "").split()
        self.jvm_options = opts
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.ready_info: dict[str, Any] = {}
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._ready_line: str | None = None
        self._answers: dict[str, dict] = {}
        self._abandoned: set[str] = set()
        self._eof = False
        self._ids = itertools.count(1)

    # -- lifecycle

    def __enter__(self) -> HapiValidator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> dict[str, Any]:
        """Start the process and wait until it reports ready; returns its ready line."""
        if self._proc is not None:
            return self.ready_info
        cmd = [self.java, *self.jvm_options, "-jar", str(self.jar)]
        for p in self.packages:
            cmd += ["--package", str(p)]
        t0 = time.monotonic()
        with self._cond:
            self._ready_line, self._eof = None, False
            self._answers.clear()
            self._abandoned.clear()
        self._proc = proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            bufsize=1,
        )
        threading.Thread(target=self._pump_stdout, args=(proc,), daemon=True).start()
        threading.Thread(target=self._pump_stderr, args=(proc,), daemon=True).start()
        with self._cond:
            self._cond.wait_for(
                lambda: self._ready_line is not None or self._eof, timeout=self.startup_timeout
            )
            line = self._ready_line
        if line is None and not self._eof:
            self.close()
            raise ValidatorUnavailable(
                f"the validator did not become ready within {self.startup_timeout:.0f} s",
                "raise startup_timeout or check the Java process's output:\n" + self.stderr_tail(),
            )
        try:
            info = json.loads(line) if line is not None else None
        except ValueError:
            info = None
        if not isinstance(info, dict) or not info.get("ready"):
            self.close()
            raise ValidatorUnavailable(
                f"the validator failed to start: {info or line or 'the process exited'}",
                "see its output:\n" + self.stderr_tail(),
            )
        self.startup_seconds = time.monotonic() - t0
        self.ready_info = info
        return info

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _pump_stdout(self, proc: subprocess.Popen) -> None:
        """Reads every answer as it comes, so the Java side never blocks on a full pipe."""
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                if self._ready_line is None:
                    # the JVM itself may print before the program starts (e.g. -XX flags)
                    if line.startswith('{"ready"'):
                        self._ready_line = line
                    else:
                        self._stderr_tail.append(f"[stdout before ready] {line.rstrip()}")
                        continue
                else:
                    try:
                        answer = json.loads(line)
                    except ValueError:
                        self._stderr_tail.append(f"[client] unparseable answer: {line[:500]!r}")
                        continue
                    rid = answer.get("id") if isinstance(answer, dict) else None
                    if rid is None:
                        self._stderr_tail.append(f"[client] answer without id: {line[:500]!r}")
                    elif rid in self._abandoned:
                        self._abandoned.discard(rid)
                    else:
                        self._answers[rid] = answer
                self._cond.notify_all()
        with self._cond:
            self._eof = True  # the process has gone
            self._cond.notify_all()

    def _pump_stderr(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._stderr_tail.append(line.rstrip("\n"))

    def stderr_tail(self, n: int = 40) -> str:
        return "\n".join(list(self._stderr_tail)[-n:])

    @property
    def pid(self) -> int | None:
        """Process id of the Java process (None when not started)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- requests

    def validate(self, resource: dict, profiles: list[str] | None = None) -> list[dict]:
        """Validate one resource (a Bundle is validated as a whole); returns its issues.

        ``profiles`` are canonical URLs to validate against in addition to ``meta.profile``.
        """
        return self._read_answer(self._send(resource, profiles))

    def validate_many(self, items: Iterable[Any], window: int = 32) -> Iterator[list[dict]]:
        """Validate many resources through the one process; yields issue lists in order.

        Each item is a resource dict or a ``(resource, profiles)`` pair. Up to ``window``
        requests are in flight at once, so the Java side does not wait for the next request.
        """
        pending: collections.deque[str] = collections.deque()
        try:
            for item in items:
                resource, profiles = _split_item(item)
                pending.append(self._send(resource, profiles))
                if len(pending) >= window:
                    yield self._read_answer(pending.popleft())
            while pending:
                yield self._read_answer(pending.popleft())
        finally:
            if pending:  # iteration stopped early: drop the answers still to come
                with self._cond:
                    for rid in pending:
                        if self._answers.pop(rid, None) is None:
                            self._abandoned.add(rid)

    def _send(self, resource: dict, profiles: list[str] | None) -> str:
        if not isinstance(resource, dict):
            raise TypeError(f"a FHIR resource must be a dict, not {type(resource).__name__}")
        rid = f"r{next(self._ids)}"
        request: dict[str, Any] = {"id": rid, "resource": resource}
        if profiles:
            request["profiles"] = list(profiles)
        # json.dumps escapes newlines inside strings, so the request is exactly one line
        line = json.dumps(request, ensure_ascii=False, separators=(",", ":"))
        with self._write_lock:
            proc = self._proc
            if proc is None or proc.stdin is None:
                raise ValidatorError("the validator is not started (use it as a context manager)")
            try:
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
            except (OSError, ValueError) as exc:
                raise ValidatorError(
                    f"the validator process is gone ({exc}):\n" + self.stderr_tail()
                ) from exc
        return rid

    def _read_answer(self, rid: str) -> list[dict]:
        with self._cond:
            arrived = self._cond.wait_for(
                lambda: rid in self._answers or self._eof, timeout=self.request_timeout
            )
            answer = self._answers.pop(rid, None)
            if not arrived:
                self._abandoned.add(rid)
        if not arrived:
            raise ValidatorError(
                f"no answer to request {rid} within {self.request_timeout} s "
                "(raise request_timeout for very large resources)"
            )
        if answer is None:
            raise ValidatorError(
                "the validator process stopped unexpectedly:\n" + self.stderr_tail()
            )
        if "error" in answer:
            raise ValidatorError(f"validator error for request {rid}: {answer['error']}")
        return answer["issues"]


def _split_item(item: Any) -> tuple[dict, list[str] | None]:
    if isinstance(item, dict):
        return item, None
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], dict):
        return item[0], item[1]
    raise TypeError("validate_many items must be resource dicts or (resource, profiles) pairs")
