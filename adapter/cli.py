"""Command line: ``ggop-adapter convert | validate | receipt | generate | demo``.

Bad input always ends in a located issue line and exit code 2, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from adapter import __version__
from adapter.errors import AdapterError, InputError, Issue, issue
from adapter.fhir.bundle import to_json
from adapter.outcome import operation_outcome

if TYPE_CHECKING:
    from adapter.runtime import Runtime

EXIT_OK, EXIT_REFUSED, EXIT_INTERNAL = 0, 2, 3


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(issue("GGOP-E009", None, "/", type(exc).__name__)) from None


def _print_issues(name: str, issues: list[Issue], stream=None) -> None:
    stream = stream or sys.stdout
    for i in issues:
        click.echo(i.render_line(name), file=stream)


def _parse_received_at(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO date-time such as 2026-03-02T10:15:00+01:00") from None
    if parsed.tzinfo is None:
        from adapter.danish_time import DANISH_TIME
        parsed = parsed.replace(tzinfo=DANISH_TIME)
    return parsed


def _expand(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(x for x in p.rglob("*.xml") if x.is_file())
        else:
            files.append(p)
    return files


def _runtime() -> Runtime:
    """The process runtime from the settings (defaults < ADAPTER_CONFIG < ADAPTER_* environment),
    the same for every command; a broken setting or file is a located line and exit 3."""
    from adapter.runtime import load_runtime

    with _Guard("-"):
        return load_runtime()
    raise AssertionError("unreachable")  # pragma: no cover


class _Guard:
    """Turn any unexpected exception into a located internal error line (exit 3)."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (InputError, click.exceptions.Exit, click.ClickException,
                                           KeyboardInterrupt, SystemExit)):
            return False
        if isinstance(exc, AdapterError):  # configuration or mapping defect: ours, not the sender's
            _print_issues(self.name, exc.issues, sys.stderr)
            raise SystemExit(EXIT_INTERNAL)
        click.echo(issue("GGOP-E900", None, "/", type(exc).__name__).render_line(self.name), err=True)
        raise SystemExit(EXIT_INTERNAL)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ggop-adapter")
def main() -> None:
    """MedCom G-GOP and XDIS91 correspondence to FHIR R4."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write <name>.json per input here.")
@click.option("--received-at", help="Receipt time (ISO 8601); default: the envelope's Sent time.")
@click.option("--compact", is_flag=True, help="One-line JSON.")
@click.option("--strict", is_flag=True,
              help="Also parse every resource with the fhir.resources models (the full check; slower).")
@click.option("--as", "as_kind", type=click.Choice(["transaction", "carecommunication"]), default="transaction",
              show_default=True, help="carecommunication: an XDIS91 letter as a MedCom CareCommunication message.")
@click.option("--format", "fmt", type=click.Choice(["json", "xml"]), default="json", show_default=True,
              help="With --as carecommunication: FHIR JSON or FHIR XML (MedCom's wire format).")
@click.option("--no-model-check", is_flag=True, hidden=True,
              help="Only the schema check of the output (the default unless ADAPTER_CHECK_MODELS is set).")
def convert(files: tuple[str, ...], out_dir: str | None, received_at: str | None, compact: bool,
            strict: bool, no_model_check: bool, as_kind: str = "transaction", fmt: str = "json") -> None:
    """Convert MedCom XML FILES to FHIR R4 transaction Bundles (or CareCommunication messages)."""
    at = _parse_received_at(received_at)
    if as_kind == "carecommunication":
        from adapter.medcom_fhir.commands import convert_files

        sys.exit(convert_files(_runtime(), _expand(files), out_dir, at, fmt, _Guard, _read, _print_issues))
    paths = _expand(files)
    if out_dir is None and len(paths) != 1:
        raise click.UsageError("several inputs need --out DIR")
    runtime = _runtime()
    check_models = strict or (runtime.settings.check_models and not no_model_check)
    refused = 0
    for n, path in enumerate(paths, 1):
        with _Guard(str(path)):
            try:
                result = runtime.convert(_read(path), at, check_models=check_models)
            except AdapterError as exc:
                refused += 1
                _print_issues(str(path), exc.issues, sys.stderr)
                continue
            text = to_json(result.bundle, None if compact else 2)
            if out_dir is None:
                click.echo(text)
                _print_issues(str(path), result.issues, sys.stderr)
            else:
                target = Path(out_dir) / (path.stem + ".json")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text + "\n", encoding="utf-8")
        if out_dir is not None and (n % 100 == 0 or n == len(paths)):
            click.echo(f"converted {n - refused}/{n} of {len(paths)} (refused {refused})", err=True)
    sys.exit(EXIT_REFUSED if refused else EXIT_OK)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print FHIR OperationOutcome(s) instead of lines.")
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check MedCom XML FILES: one line per issue, exit 2 when any is refused."""
    paths = _expand(files)
    runtime = _runtime()
    refused = 0
    for path in paths:
        with _Guard(str(path)):
            try:
                result = runtime.validate(_read(path))
                issues, accepted = result.issues, result.accepted
            except InputError as exc:
                issues, accepted = exc.issues, False
            refused += 0 if accepted else 1
            if as_json:
                oo = operation_outcome(issues, str(path) if len(paths) > 1 else None)
                click.echo(json.dumps(oo, ensure_ascii=False, indent=None if len(paths) > 1 else 2))
            else:
                _print_issues(str(path), issues)
    sys.exit(EXIT_REFUSED if refused else EXIT_OK)


@main.command()
@click.argument("file", type=click.Path())
@click.option("--received-at", help="Receipt time (ISO 8601); default: the envelope's Sent time.")
@click.option("--as", "as_kind", type=click.Choice(["xctl", "acknowledgement"]), default=None,
              help="acknowledgement: the MedCom Acknowledgement (FHIR) instead of the XCTL receipt, also for an "
                   "XCTL receipt or a CareCommunication; xctl with an Acknowledgement FILE: its XCTL receipt.")
@click.option("--format", "fmt", type=click.Choice(["json", "xml"]), default="json", show_default=True,
              help="The Acknowledgement's format.")
@click.option("--acknowledged", help="With an Acknowledgement FILE: ENVELOPE_ID,LETTER_ID[,VERSION_CODE] of the "
                                     "OIOXML letter it acknowledges.")
def receipt(file: str, received_at: str | None, as_kind: str | None = None, fmt: str = "json",
            acknowledged: str | None = None) -> None:
    """Print the MedCom receipt the sender gets: XCTL03 when accepted, XCTL02 when refused."""
    runtime = _runtime()
    if as_kind is not None:
        from adapter.medcom_fhir.commands import receipt_file

        sys.exit(receipt_file(runtime, file, as_kind, fmt, acknowledged, _parse_received_at(received_at),
                              _Guard, _read, _print_issues))
    with _Guard(file):
        try:
            result = runtime.receipt(_read(Path(file)), _parse_received_at(received_at))
        except InputError as exc:
            _print_issues(file, exc.issues, sys.stderr)
            sys.exit(EXIT_REFUSED)
        if result.xml is None:
            _print_issues(file, result.issues, sys.stderr)
            click.echo(f"{file}: no receipt can be addressed: the envelope identifier, the sender's and "
                       f"receiver's location numbers or the envelope's Sent time (give --received-at) "
                       f"cannot be found", err=True)
            sys.exit(EXIT_REFUSED)
        sys.stdout.buffer.write(result.xml + b"\n")
        sys.stdout.flush()
        if not result.positive:
            _print_issues(file, result.issues, sys.stderr)
        sys.exit(EXIT_OK if result.positive else EXIT_REFUSED)


@main.command()
@click.option("--count", default=20, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
def generate(count: int, seed: int, out_dir: str) -> None:
    """Write COUNT realistic synthetic G-GOPs and XDIS91 letters, reproducible by SEED."""
    from adapter.generate import generate_messages
    from adapter.generate.mix import format_rows, plan_mix

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    messages = generate_messages(count, seed)
    for n, m in enumerate(messages, 1):
        (out / m.filename).write_bytes(m.xml)
        if n % 500 == 0:
            click.echo(f"wrote {n}/{count}", err=True)
    kinds: dict[str, int] = {}
    for m in messages:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    click.echo(f"wrote {len(messages)} messages to {out} ("
               + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())) + ")", err=True)
    click.echo("the plans' mix, against the national figures (S3):", err=True)
    click.echo(format_rows(plan_mix(messages)), err=True)


@main.command()
@click.argument("file", type=click.Path())
@click.option("--received-at", help="Receipt time (ISO 8601); default: the envelope's Sent time.")
@click.option("--lang", type=click.Choice(["both", "da", "en"]), default="both", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the trace (the same as <case>.trace.json).")
@click.option("--lineage", "as_lineage", is_flag=True,
              help="Print, as JSON, the source XPath (and rule id) of each FHIR element the message became "
                   "(G-GOP and XDIS91; adapter/mappings/lineage.yaml).")
def explain(file: str, received_at: str | None, lang: str, as_json: bool, as_lineage: bool) -> None:
    """Explain a G-GOP: plan type, the proposed level with every rule that fired, and each
    deadline with its date, rule id and legal basis (Danish and English)."""
    from adapter.rules.trace import explain as render

    runtime = _runtime()
    with _Guard(file):
        try:
            raw = _read(Path(file))
            result = runtime.convert(raw, _parse_received_at(received_at), check_models=False)
        except InputError as exc:
            _print_issues(file, exc.issues, sys.stderr)
            sys.exit(EXIT_REFUSED)
        if as_lineage:
            from adapter.lineage import lineage
            from adapter.medcom.xmlsafe import read_xml

            rows = lineage(read_xml(raw, max_bytes=runtime.limits.max_bytes).root, result.bundle, result.trace)
            click.echo(json.dumps({"file": file, "kind": result.kind, "lineage": rows}, ensure_ascii=False, indent=2))
            return
        if result.trace is None:
            click.echo(f"{file}: a {result.kind} message has no plan to explain (only G-GOP plans have "
                       "levels and deadlines)", err=True)
            sys.exit(EXIT_REFUSED)
        if as_json:
            click.echo(json.dumps(result.trace, ensure_ascii=False, indent=2))
        else:
            langs = ["da", "en"] if lang == "both" else [lang]
            click.echo("\n\n".join(render(result.trace, x) for x in langs))
        _print_issues(file, result.issues, sys.stderr)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Also write an HTML report here.")
@click.option("--verbose", is_flag=True, help="List every location, not one per kind of finding.")
def conformance(paths: tuple[str, ...], as_json: bool, html_out: str | None, verbose: bool) -> None:
    """Validate the FHIR the adapter emits for MedCom FILES (or FHIR JSON files) with HAPI
    FHIR's validator against R4 core and the Danish profiles. Exit 0 without errors, 2 with.
    Needs Java 17+ and Maven (tools/fhir-validator) and the Danish packages."""
    from adapter.conformance import ValidatorUnavailable
    from adapter.conformance.report import render_html, render_text, run

    try:
        report = run(paths, _runtime(), progress=lambda n: click.echo(f"validated {n} inputs", err=True))
    except ValidatorUnavailable as exc:
        click.echo(f"conformance: the validator cannot run here: {exc.reason}", err=True)
        click.echo(f"conformance: to fix: {exc.how_to_fix}", err=True)
        sys.exit(EXIT_INTERNAL)
    if html_out:
        Path(html_out).write_text(render_html(report), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_text(report, verbose))
    sys.exit(EXIT_OK if report.ok else EXIT_REFUSED)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Request threads per worker.")
@click.option("--inbox", "inbox_dir", type=click.Path(file_okay=False),
              help="Also watch this folder for files dropped by a VANS client.")
def serve(host: str, port: int, workers: int, threads: int, inbox_dir: str | None) -> None:
    """Run the service: POST /medcom for hospitals, /fhir for municipalities (gunicorn)."""
    from adapter.api.app import create_app
    from adapter.api.auth import load_clients
    from adapter.api.server import WORKER_CLASS, AdapterServer
    from adapter.runtime import load_runtime

    runtime = _runtime()
    settings = runtime.settings
    import dataclasses

    from adapter.metrics import enable_multiprocess

    # every gunicorn worker (and the inbox watcher) counts into one folder; before any metric exists
    enable_multiprocess(settings.metrics_dir, clean=True)

    # the last resort for absolute URLs is the bind address, never a client's Host header
    settings = dataclasses.replace(settings, bind_url=f"http://{host}:{port}")
    with _Guard("-"):
        from adapter.api.oauth import load_oauth

        # a broken clients file or OAuth configuration, or an open /medcom, stops here: a located line
        load_clients(settings.clients_file, allow_none=settings.open_medcom, oauth=load_oauth(settings))
        runtime.engine.dispose()  # migrate once before the workers start
    click.echo(f"ggop-adapter {__version__}: database {settings.database_url}, "
               f"clients {settings.clients_file or '(none: /medcom open for local testing, /fhir closed)'}", err=True)
    click.echo(f"listening on http://{host}:{port}  (POST /medcom, GET /fhir/metadata, /healthz)", err=True)
    if inbox_dir:
        import atexit

        from adapter.service.inbox import WatcherProcess

        # a process of its own: the gunicorn master must hold no store connection when it forks
        atexit.register(WatcherProcess(Path(inbox_dir)).start().stop)
        click.echo(f"watching inbox {inbox_dir}", err=True)
    # each gunicorn worker builds its own runtime from the same settings (no shared connections)
    AdapterServer(lambda: create_app(load_runtime(settings)), {
        "bind": f"{host}:{port}", "workers": workers, "worker_class": WORKER_CLASS, "threads": threads,
        # no access log of gunicorn's: the app writes one JSON line per request (adapter/logs.py)
        "accesslog": None,
        "timeout": 60, "graceful_timeout": 10,
    }).run()


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--once", is_flag=True, help="Process what is there now and stop.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1, 3600))
def inbox(directory: str, once: bool, interval: float) -> None:
    """Pick up MedCom files dropped in DIRECTORY (by a VANS client); move each to done/ or
    failed/ with its receipt beside it. Nothing is lost when the process is killed midway."""
    from adapter.service.inbox import process_inbox, watch

    runtime = _runtime()
    with _Guard("-"):
        if once:
            counts = process_inbox(Path(directory), runtime)
            click.echo(f"inbox {directory}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), err=True)
            return
        watch(Path(directory), runtime, interval=interval)


@main.command("ingest")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--jobs", type=click.IntRange(1, 64), help="Processes (default: one per core).")
@click.option("--batch", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="Messages stored per transaction (a failing one is stored again on its own).")
@click.option("--receipts", "receipts_dir", type=click.Path(file_okay=False), help="Write each receipt here.")
@click.option("--no-progress", is_flag=True, help="No progress bar (a log or CI).")
def ingest_command(directory: str, jobs: int | None, batch: int, receipts_dir: str | None, no_progress: bool) -> None:
    """Ingest every *.xml under DIRECTORY into the store (a backlog, a replayed year), each
    message as POST /medcom takes it, in parallel processes, BATCH messages per transaction;
    the files stay where they are.
    Exit 0 when none failed for a defect of ours, 3 otherwise (refusals are counted, not failures)."""
    import time

    from adapter.service.bulk import files_of, ingest_folder

    runtime = _runtime()  # settings and store checked (and migrated) once, before the processes start
    with _Guard("-"):
        runtime.engine.dispose()
    total = len(files_of(Path(directory)))
    started = time.monotonic()
    with click.progressbar(length=total, label="ingest", file=sys.stderr, show_pos=True, show_eta=True,
                           hidden=no_progress) as bar, _Guard("-"):
        summary = ingest_folder(Path(directory), jobs=jobs, receipts=Path(receipts_dir) if receipts_dir else None,
                                progress=bar.update, batch=batch)
    elapsed = time.monotonic() - started
    rate = summary.files / elapsed if elapsed > 0 else 0.0
    click.echo(f"ingest {directory}: {summary.files} files in {elapsed:.1f} s ({rate:.0f}/s): "
               + ", ".join(f"{k} {v}" for k, v in sorted(summary.by_state.items())), err=True)
    if summary.by_code:
        click.echo("refusal codes: " + ", ".join(f"{k} {v}" for k, v in summary.by_code.most_common(10)), err=True)
    sys.exit(EXIT_INTERNAL if summary.failed or summary.by_state.get("not taken") else EXIT_OK)


@main.command()
@click.option("--interval", type=click.FloatRange(1, 86400), default=None,
              help="Repeat every INTERVAL seconds (default: once).")
def reevaluate(interval: float | None) -> None:
    """Re-evaluate every open plan now: business statuses of deadline Tasks, and the
    free-choice Task where a start deadline passed without an offer."""
    import time

    from adapter.danish_time import utc_now
    from adapter.service.sweep import reevaluate_all

    runtime = _runtime()
    with _Guard("-"):
        while True:
            counts = reevaluate_all(runtime, utc_now())
            click.echo(f"re-evaluated {counts['plans']} plans, {counts['changed']} resources changed", err=True)
            if interval is None:
                return
            time.sleep(interval)


@main.command()
@click.option("--dir", "work_dir", default="var/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--count", default=25, show_default=True, type=click.IntRange(1, 10_000))
def demo(work_dir: str, count: int) -> None:
    """Generate sample messages and convert them: a first look without any setup."""
    from adapter.generate import generate_messages

    runtime = _runtime()
    base = Path(work_dir)
    inbox, out = base / "messages", base / "bundles"
    inbox.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, int] = {}
    for m in generate_messages(count, seed=1):
        (inbox / m.filename).write_bytes(m.xml)
        result = runtime.convert(m.xml)
        (out / (Path(m.filename).stem + ".json")).write_text(to_json(result.bundle) + "\n", encoding="utf-8")
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    click.echo(f"generated {count} messages in {inbox}")
    click.echo(f"converted them to FHIR R4 transaction Bundles in {out}")
    click.echo("  " + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())))
    click.echo("try: ggop-adapter validate " + str(inbox) + " ; ggop-adapter receipt <file>")



def _register_routing_commands() -> None:
    """`worker`, `routes` and `outbox` live with the routing code."""
    from adapter.routing.cli import commands

    for command in commands():
        main.add_command(command)


_register_routing_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
