"""`recfuse ledger ...`: verify a ledger, prove an entry, check a proof, show entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recfuse.errors import ConfigError, DataError

if TYPE_CHECKING:
    from recfuse.governance.signing import Checkpoint

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _key(hex_key: str | None) -> bytes | None:
    if hex_key is None:
        return None
    try:
        key = bytes.fromhex(hex_key)
    except ValueError as exc:
        raise ConfigError(f"--public-key: not hex ({exc})") from exc
    if len(key) != 32:
        raise ConfigError("--public-key: an Ed25519 public key is 32 bytes (64 hex digits)")
    return key


def _existing(db: Path) -> Path:
    if not db.is_file():
        raise DataError(f"{db}: no ledger file here")
    return db


def _witness(path: Path) -> tuple[Checkpoint, bytes | None]:
    """A witness file written by `recfuse ledger checkpoint`: the checkpoint and its key."""
    from recfuse.governance.signing import Checkpoint

    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        cp = Checkpoint.from_json(obj)
    except (OSError, ValueError, RecursionError, ConfigError) as exc:
        raise DataError(
            f"--witness {path}: not a checkpoint written by `ledger checkpoint` ({exc})"
        ) from None
    key = obj.get("public_key")
    return cp, _key(key) if isinstance(key, str) and key else None


@app.command()
def verify(
    db: Annotated[Path, typer.Argument(help="The ledger's SQLite file (opened read-only).")],
    public_key: Annotated[
        str | None, typer.Option(help="Pin the signer (hex); default: the file's key.")
    ] = None,
    witness: Annotated[
        list[Path] | None,
        typer.Option(
            help="A checkpoint JSON kept elsewhere (`recfuse ledger checkpoint`): the log must "
            "extend it. Without one, a rewrite that also deletes the checkpoints and the key is "
            "not detectable. Repeatable."
        ),
    ] = None,
    allow_uncovered: Annotated[
        bool,
        typer.Option(help="Do not fail on entries newer than every signed checkpoint."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Recompute every hash and signature; name the first bad entry. Exit 1 if anything is wrong.

    Entries that no verified signed checkpoint covers fail the check when the log has a key.
    """
    from recfuse.governance.verify import verify_ledger

    pinned = _key(public_key)
    witnesses = [_witness(w) for w in witness or []]
    report = verify_ledger(db, pinned, witnesses=witnesses, require_coverage=not allow_uncovered)
    uncovered = report.uncovered
    if as_json:
        out = {
            "ok": report.ok, "path": report.path, "size": report.size, "root": report.root,
            "checkpoints": report.checkpoints, "blobs": report.blobs, "covered": report.covered,
            "uncovered": list(uncovered) if uncovered else None,
            "first_bad_entry": report.first_bad_entry,
            "findings": [f.__dict__ | {"text": str(f)} for f in report.findings],
        }  # fmt: skip
        typer.echo(json.dumps(out, indent=2))
    elif report.ok:
        note = ""
        if uncovered is not None:
            note = f"; entries {uncovered[0]}..{uncovered[1]} NOT covered by a signed checkpoint"
        typer.echo(
            f"OK {db}: {report.size} entries, root {report.root}, "
            f"{report.checkpoints} signed checkpoints verified, {report.blobs} blobs{note}"
        )
    else:
        first = report.first
        typer.echo(f"FAILED {db}: {len(report.findings)} problems; first: {first}")
        if report.first_bad_entry is not None:
            typer.echo(f"first bad entry: {report.first_bad_entry}")
        for finding in report.findings[:20]:
            typer.echo(f"  - {finding}")
    if not report.ok:
        raise SystemExit(1)  # typer.Exit codes are dropped by recfuse.cli.main


@app.command()
def prove(
    db: Annotated[Path, typer.Argument(help="The ledger's SQLite file.")],
    entry: Annotated[int, typer.Argument(help="Index of the entry to prove.")],
    out: Annotated[Path | None, typer.Option(help="Also write the proof to this file.")] = None,
    sign: Annotated[
        bool,
        typer.Option(
            help="Sign a new checkpoint if none covers the entry yet (the only way this command "
            "writes; without it the ledger is opened read-only)."
        ),
    ] = False,
) -> None:
    """Print a self-contained inclusion proof (entry, path, signed checkpoint, public key)."""
    from recfuse.atomic import write_json
    from recfuse.governance.bundle import make_bundle
    from recfuse.governance.ledger import Ledger

    with Ledger(_existing(db), read_only=not sign) as ledger:
        if not 0 <= entry < ledger.size():
            raise DataError(f"{db}: no entry {entry} (the log has {ledger.size()})")
        try:
            bundle = make_bundle(ledger, entry, sign_if_needed=sign)
        except ValueError as exc:
            raise DataError(
                f"{db}: {exc}; sign one (`recfuse ledger checkpoint {db}`) or pass --sign"
            ) from exc
    if out is not None:
        write_json(out, bundle)
    typer.echo(json.dumps(bundle, indent=2))


@app.command("check-proof")
def check_proof(
    proof: Annotated[Path, typer.Argument(help="A proof written by `recfuse ledger prove`.")],
    public_key: Annotated[str | None, typer.Option(help="Pin the signer (hex).")] = None,
) -> None:
    """Check a proof with nothing but hashes and the signature. Exit 1 if it fails."""
    from recfuse.governance.bundle import check_bundle

    try:
        bundle = json.loads(proof.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{proof}: not a readable JSON proof ({exc})") from exc
    problems = check_bundle(bundle, _key(public_key))
    if problems:
        for p in problems:
            typer.echo(f"FAILED: {p}")
        raise SystemExit(1)  # typer.Exit codes are dropped by recfuse.cli.main
    typer.echo(
        f"OK: entry {bundle['leaf_index']} is in log {bundle['log_id']} of size "
        f"{bundle['tree_size']} (checkpoint {bundle['checkpoint']['seq']}, root {bundle['checkpoint']['root']})"
    )


@app.command()
def checkpoint(db: Annotated[Path, typer.Argument(help="The ledger's SQLite file.")]) -> None:
    """Sign the current tree head and print it (keep a copy elsewhere to witness the log)."""
    from recfuse.governance.ledger import Ledger

    with Ledger(_existing(db)) as ledger:
        cp = ledger.checkpoint()
        out = cp.to_json() | {"public_key": (ledger.public_key() or b"").hex()}
    typer.echo(json.dumps(out, indent=2))


@app.command()
def consistency(
    db: Annotated[Path, typer.Argument(help="The ledger's SQLite file.")],
    old: Annotated[int, typer.Argument(help="Sequence number of the older checkpoint.")],
    new: Annotated[
        int | None, typer.Argument(help="Sequence number of the newer one (default: latest).")
    ] = None,
) -> None:
    """Print a consistency proof between two signed checkpoints."""
    from recfuse.governance.bundle import make_consistency
    from recfuse.governance.ledger import Ledger

    with Ledger(_existing(db), read_only=True) as ledger:
        n = len(ledger.checkpoints())
        for seq in (old, new):
            if seq is not None and not 0 <= seq < n:
                raise DataError(f"{db}: no checkpoint {seq} (there are {n})")
        typer.echo(json.dumps(make_consistency(ledger, old, new), indent=2))


@app.command()
def show(
    db: Annotated[Path, typer.Argument(help="The ledger's SQLite file.")],
    start: Annotated[int, typer.Option(help="First entry.")] = 0,
    limit: Annotated[int, typer.Option(help="How many entries.")] = 50,
    decision: Annotated[str | None, typer.Option(help="Only 'allow' or 'deny'.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
) -> None:
    """List entries: index, time, actor, action, resource, decision, outcome, deciding policies."""
    from rich.console import Console
    from rich.table import Table

    from recfuse.governance.ledger import Ledger

    table = Table("#", "time", "actor", "action", "resource", "decision", "outcome", "policies")
    shown = 0
    with Ledger(_existing(db), read_only=True) as ledger:
        for e in ledger.entries(start):
            if (decision and e.get("decision") != decision) or (
                action and e.get("action") != action
            ):
                continue
            resource, why = e.get("resource"), e.get("reasons")
            res: dict[str, Any] = resource if isinstance(resource, dict) else {}
            reasons: list[Any] = why if isinstance(why, list) else []
            table.add_row(
                str(e.get("index")), str(e.get("time", ""))[:23], str(e.get("actor", "")),
                str(e.get("action", "")), f"{res.get('type', '')}::{res.get('id', '')}"[:48],
                str(e.get("decision", "")), str(e.get("outcome", "")),
                ", ".join(map(str, reasons)),
            )  # fmt: skip
            shown += 1
            if shown >= limit:
                break
    Console(width=200).print(table)


@app.command()
def blob(
    db: Annotated[Path, typer.Argument(help="The ledger's SQLite file.")],
    digest: Annotated[str, typer.Argument(help="A digest from an entry (sha256:...).")],
) -> None:
    """Print content kept beside the log (e.g. a prompt), after checking it hashes to ``digest``."""
    from recfuse.governance.digest import sha256_hex
    from recfuse.governance.ledger import Ledger

    with Ledger(_existing(db), read_only=True) as ledger:
        data = ledger.blob(digest)
    if data is None:
        raise DataError(f"{db}: no content kept for {digest}")
    if "sha256:" + sha256_hex(data) != digest:
        typer.echo(f"FAILED: the content kept for {digest} does not hash to it")
        raise SystemExit(1)
    typer.echo(data.decode("utf-8", errors="replace"))
