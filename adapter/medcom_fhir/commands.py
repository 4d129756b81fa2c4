"""What ``ggop-adapter convert --as carecommunication`` and ``ggop-adapter receipt --as
acknowledgement|xctl`` do, as functions of the bytes (the CLI only reads files and prints)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adapter.errors import InputError, Issue, issue
from adapter.medcom.model import CorrespondenceMessage, ReceiptMessage
from adapter.medcom_fhir.acknowledgement import FATAL, OK, Acknowledged, acknowledge, acknowledgement_from_xctl
from adapter.medcom_fhir.acknowledgement import xctl_from_acknowledgement as _xctl
from adapter.medcom_fhir.outbound import carecommunication_message, letter_seed, message_ids
from adapter.medcom_fhir.receive import check_message
from adapter.medcom_fhir.sor import load_sor_directory
from adapter.medcom_fhir.wire import JSON, format_of, read_message, render

if TYPE_CHECKING:
    from adapter.runtime import Runtime


@dataclass
class Answer:
    body: bytes | None
    accepted: bool
    issues: list[Issue] = field(default_factory=list)


def convert_to_carecommunication(runtime: Runtime, raw: bytes, received_at: dt.datetime | None = None,
                                 fmt: str = JSON) -> tuple[bytes, list[Issue]]:
    """An XDIS91 letter as a CareCommunication message; raises InputError."""
    conversion = runtime.convert(raw, received_at)
    letter = conversion.message
    if not isinstance(letter, CorrespondenceMessage) or letter.sender is None or letter.sender.ean is None \
            or letter.letter.identifier is None:
        raise InputError(issue("GGOP-E605", None, None, "only correspondence letters (XDIS91) become "
                                                        "CareCommunication messages"))
    bundle_id, header_id = message_ids(letter_seed(letter.sender.ean.value, letter.letter.identifier.value))
    message = carecommunication_message(conversion.bundle, load_sor_directory(runtime.mappings_dir),
                                        bundle_id=bundle_id, header_id=header_id)
    return render(message, fmt), conversion.issues


def _acknowledged_letter(msg: ReceiptMessage) -> Acknowledged:
    original = msg.original_letters[0] if msg.original_letters else None
    return Acknowledged.converted_letter(
        msg.original_sender_ean.value if msg.original_sender_ean else "",
        msg.original_envelope_identifier.value if msg.original_envelope_identifier else "",
        original.identifier.value if original and original.identifier else "",
        original.version_code.value if original and original.version_code else "XD9134L")


def acknowledgement_for(runtime: Runtime, raw: bytes, received_at: dt.datetime | None = None,
                        fmt: str = JSON) -> Answer:
    """The Acknowledgement for a file: a CareCommunication message gets the one it would be
    answered with (without storing it, so without deduplication); an XCTL receipt becomes the
    Acknowledgement of the CareCommunication its letter became (Flow 4); a G-GOP or XDIS91
    letter gets its receipt, as an Acknowledgement."""
    sor = load_sor_directory(runtime.mappings_dir)
    if format_of(raw) == JSON or b"http://hl7.org/fhir" in raw[:2000]:
        table = runtime.routes().load()
        checked = check_message(raw, limits=runtime.limits, municipalities=runtime.tables.municipalities, sor=sor,
                                routable=lambda keys: any(k in table.routes for k in keys))
        if checked.message is None or not checked.message.addressable:
            return Answer(None, False, checked.issues or [issue("GGOP-E605")])
        at = received_at or _timestamp(checked.message.timestamp)
        if at is None:
            return Answer(None, False, checked.issues or [issue("GGOP-E606", fhir_path="Bundle.timestamp")])
        code = OK if checked.accepted else FATAL
        ack = acknowledge(checked.message, code, at, sor, checked.issues)
        return Answer(render(ack, fmt) if ack else None, checked.accepted, checked.issues)
    validation = runtime.validate(raw)
    if isinstance(validation.message, ReceiptMessage) and validation.accepted:
        receipt = validation.message
        return Answer(render(acknowledgement_from_xctl(receipt, _acknowledged_letter(receipt), sor), fmt), True)
    result = runtime.receipt(raw, received_at)
    if result.xml is None:
        return Answer(None, False, result.issues)
    xctl = runtime.validate(result.xml).message
    assert isinstance(xctl, ReceiptMessage), "the adapter's own receipt reads as a receipt"
    return Answer(render(acknowledgement_from_xctl(xctl, _acknowledged_letter(xctl), sor), fmt), result.positive,
                  result.issues)


def xctl_from_acknowledgement(runtime: Runtime, raw: bytes, acknowledged: Acknowledged) -> Answer:
    """An Acknowledgement as the XCTL receipt of the OIOXML letter ``acknowledged`` (Flow 2)."""
    ack, _ = read_message(raw, runtime.limits)
    try:
        xml = _xctl(ack, acknowledged)
    except (ValueError, KeyError, TypeError):
        return Answer(None, False, [issue("GGOP-E615", fhir_path="Bundle.entry[0].resource")])
    response = (ack.get("entry") or [{}])[0].get("resource", {}).get("response", {})
    return Answer(xml, response.get("code") == OK)


def _timestamp(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------
# The CLI's side (files in, bytes out); the CLI passes its guard, reader and issue printer
# --------------------------------------------------------------------------------------------

EXIT_OK, EXIT_REFUSED = 0, 2


def convert_files(runtime: Runtime, paths: list, out_dir: str | None, at: dt.datetime | None, fmt: str,
                  guard, read, print_issues) -> int:
    import sys
    from pathlib import Path

    import click

    if out_dir is None and len(paths) != 1:
        raise click.UsageError("several inputs need --out DIR")
    refused = 0
    for path in paths:
        with guard(str(path)):
            try:
                body, issues = convert_to_carecommunication(runtime, read(path), at, fmt)
            except InputError as exc:
                refused += 1
                print_issues(str(path), exc.issues, sys.stderr)
                continue
            if out_dir is None:
                sys.stdout.buffer.write(body + b"\n")
                sys.stdout.flush()
                print_issues(str(path), issues, sys.stderr)
            else:
                target = Path(out_dir) / (Path(path).stem + "." + fmt)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body + b"\n")
    return EXIT_REFUSED if refused else EXIT_OK


def receipt_file(runtime: Runtime, file: str, as_kind: str, fmt: str, acknowledged: str | None,
                 at: dt.datetime | None, guard, read, print_issues) -> int:
    import sys
    from pathlib import Path

    import click

    with guard(file):
        raw = read(Path(file))
        if as_kind == "xctl":
            parts = (acknowledged or "").split(",")
            if len(parts) not in (2, 3) or not all(parts):
                raise click.UsageError("--as xctl needs --acknowledged ENVELOPE_ID,LETTER_ID[,VERSION_CODE]")
            original = Acknowledged(parts[0], parts[1], parts[2] if len(parts) == 3 else "XD9134L", "", "")
            try:
                answer = xctl_from_acknowledgement(runtime, raw, original)
            except InputError as exc:
                answer = Answer(None, False, exc.issues)
        else:
            try:
                answer = acknowledgement_for(runtime, raw, at, fmt)
            except InputError as exc:
                answer = Answer(None, False, exc.issues)
        if answer.body is None:
            print_issues(file, answer.issues, sys.stderr)
            click.echo(f"{file}: no acknowledgement can be addressed", err=True)
            return EXIT_REFUSED
        sys.stdout.buffer.write(answer.body + b"\n")
        sys.stdout.flush()
        if not answer.accepted:
            print_issues(file, answer.issues, sys.stderr)
        return EXIT_OK if answer.accepted else EXIT_REFUSED
