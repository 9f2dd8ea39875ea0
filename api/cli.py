"""`pollcheck`: the admin's command line (migrations, mission set-up, imports, tokens, server)."""

from __future__ import annotations

import contextlib
import signal
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.config import get_settings
from api.db import session_scope
from api.errors import AppError
from api.services import audit
from models import Role, Sampling

app = typer.Typer(
    help="Pollcheck: set up a mission, import stations and observers, issue tokens.",
    no_args_is_help=True,
)
stations_app = typer.Typer(help="Polling stations", no_args_is_help=True)
observers_app = typer.Typer(help="Observers and their assignments", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens (shown once, stored as hashes)", no_args_is_help=True)
template_app = typer.Typer(help="Checklist templates", no_args_is_help=True)
mission_app = typer.Typer(help="Missions", no_args_is_help=True)
sms_app = typer.Typer(help="SMS checklists", no_args_is_help=True)
for sub, name in (
    (sms_app, "sms"),
    (mission_app, "mission"),
    (stations_app, "stations"),
    (observers_app, "observers"),
    (token_app, "token"),
    (template_app, "template"),
):
    app.add_typer(sub, name=name)

# soft_wrap: a token is never broken across lines, so it can be copied whole.
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
MissionOpt = Annotated[uuid.UUID, typer.Option("--mission", "-m", help="Mission id")]


def _fail(exc: AppError) -> None:
    err.print(f"[red]{exc.error}[/red]: {exc.detail}")
    for e in exc.errors or []:
        err.print(f"  {'.'.join(str(p) for p in e['path'])}: {e['message']}")
    raise typer.Exit(1)


@app.command()
def migrate(revision: str = "head") -> None:
    """Bring the database schema up to date (Alembic)."""
    from api.migrate import upgrade

    upgrade(revision=revision)
    console.print(f"database migrated to {revision}")


@app.command()
def downgrade(revision: str) -> None:
    """Undo migrations down to REVISION ('base' empties the database)."""
    from api.migrate import downgrade as down

    down(revision=revision)
    console.print(f"database downgraded to {revision}")


@app.command()
def demo(credentials_file: Path = Path("var/demo-credentials.txt")) -> None:
    """Load the demo mission (again is harmless) and print its tokens."""
    from api.services import demo as demo_service

    if get_settings().environment == "production":
        err.print("[red]refusing to load demo data in production[/red]")
        raise typer.Exit(1)
    with session_scope() as s:
        tokens = demo_service.load(s, credentials_file)
    console.print(f"demo mission: [bold]{demo_service.DEMO_MISSION_ID}[/bold]")
    for role, token in tokens.items():
        console.print(f"  {role:<20} {token}")
    console.print(f"(tokens kept in {credentials_file})")
    from api.services.signin_qr import signin_url

    settings = get_settings()
    observer = next(t for r, t in tokens.items() if r.startswith("observer"))
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"observer web app, signed in: {signin_url(base, observer)}", soft_wrap=True)
    console.print(
        f"core team's console, as the analyst: {base}/console/#token={tokens['analyst']}",
        soft_wrap=True,
    )


@mission_app.command("create")
def mission_create(
    name: Annotated[str, typer.Option(help="Mission name")],
    country: Annotated[str, typer.Option(help="Host country")],
    election_date: Annotated[str, typer.Option("--date", help="Election day, YYYY-MM-DD")],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Asia/Almaty")],
    languages: Annotated[str, typer.Option(help="Comma-separated, default first")] = "en,ru",
    sampling: Annotated[Sampling, typer.Option(help="purposive or random")] = Sampling.purposive,
) -> None:
    """Create a mission with the default checklist and print its first admin token."""
    from pydantic import ValidationError

    from api.services import missions
    from models.mission import MissionCreate

    try:
        body = MissionCreate(
            name=name,
            country=country,
            election_date=date.fromisoformat(election_date),
            timezone=timezone,
            languages=languages.split(","),
            sampling=sampling,
        )
    except (ValidationError, ValueError) as exc:
        err.print(f"[red]invalid mission[/red]: {exc}")
        raise typer.Exit(1) from exc
    with session_scope() as s:
        mission, admin = missions.create(s, body)
        audit.record_cli(s, mission.id, "mission create", f"mission/{mission.id}")
    console.print(f"mission id:  [bold]{mission.id}[/bold]")
    console.print(f"admin token: [bold]{admin.token}[/bold]  (shown once: keep it safe)")


def _counts(report: Any) -> dict[str, int]:
    return {"rows": report.rows, "created": report.created, "updated": report.updated}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]cannot read {path}[/red]: {exc}")
        raise typer.Exit(1) from exc


def _report(report: object) -> None:
    from models.station import ImportReport

    assert isinstance(report, ImportReport)
    if report.problems:
        table = Table(
            "line", "problem", title=f"{len(report.problems)} bad row(s): nothing written"
        )
        for p in report.problems:
            table.add_row(str(p.line), p.reason)
        console.print(table)
        raise typer.Exit(1)
    verb = "would be" if report.dry_run else "were"
    console.print(
        f"{report.rows} rows: {report.created} {verb} created, {report.updated} "
        f"{verb} updated, {report.unchanged} unchanged"
    )


@stations_app.command("import")
def stations_import(
    csv_file: Path,
    mission: MissionOpt,
    dry_run: Annotated[bool, typer.Option(help="Check every row, write nothing")] = False,
) -> None:
    """Import stations from CSV (code,name,region,district,city,country,post,address,...)."""
    from api.services import stations

    text = _read_text(csv_file)
    total = max(text.count("\n") - 1, 1)
    with Progress(
        TextColumn("stations"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("import", total=total)
        try:
            with session_scope() as s:
                report = stations.import_csv(
                    s, mission, text, dry_run, progress=lambda n: progress.advance(task, n)
                )
                if not dry_run and not report.problems:
                    audit.record_cli(s, mission, "stations import", str(csv_file), _counts(report))
        except AppError as exc:
            _fail(exc)
    _report(report)


@observers_app.command("import")
def observers_import(
    csv_file: Path,
    mission: MissionOpt,
    dry_run: Annotated[bool, typer.Option(help="Check every row, write nothing")] = False,
) -> None:
    """Import observers from CSV (code,name,team,phone,language,stations)."""
    from api.services import observers

    try:
        with session_scope() as s:
            report = observers.import_csv(s, mission, _read_text(csv_file), dry_run)
            if not dry_run and not report.problems:
                audit.record_cli(s, mission, "observers import", str(csv_file), _counts(report))
    except AppError as exc:
        _fail(exc)
    _report(report)


@token_app.command("create")
def token_create(
    mission: MissionOpt,
    role: Annotated[Role, typer.Option(help="admin, analyst, observer or viewer")],
    label: Annotated[str, typer.Option(help="Who or what holds it")] = "",
    observer: Annotated[str | None, typer.Option(help="Observer code (observer role)")] = None,
) -> None:
    """Issue a token; it is printed once and stored only as a hash."""
    from sqlalchemy import select
    from sqlmodel import col

    from api.services import credentials
    from models import Observer

    try:
        with session_scope() as s:
            observer_id = None
            if observer:
                observer_id = s.scalar(
                    select(col(Observer.id)).where(
                        col(Observer.mission_id) == mission, col(Observer.code) == observer
                    )
                )
                if observer_id is None:
                    err.print(f"[red]no observer {observer!r} in mission {mission}[/red]")
                    raise typer.Exit(1)
            issued = credentials.issue(
                s, mission, role, label or f"{role.value} {observer or ''}".strip(), observer_id
            )
            audit.record_cli(
                s, mission, "token create", f"credential/{issued.id}", {"role": role.value}
            )
    except AppError as exc:
        _fail(exc)
    console.print(f"credential {issued.id}\ntoken: [bold]{issued.token}[/bold]  (shown once)")


@token_app.command("observers")
def token_observers(
    mission: MissionOpt,
    codes: Annotated[list[str] | None, typer.Argument(help="Observer codes")] = None,
    all_observers: Annotated[bool, typer.Option("--all", help="Every observer")] = False,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write code,name,token here (readable by you only)")
    ] = None,
) -> None:
    """Issue a token for each observer named by code (or --all), each printed once."""
    import csv
    import io

    from api.kit.spreadsheet import safe_cell
    from api.services import credentials

    if bool(codes) == all_observers:
        err.print("[red]name observer codes, or give --all[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as s:
            issued = credentials.issue_for_observers(s, mission, None if all_observers else codes)
            audit.record_cli(
                s, mission, "token observers", f"mission/{mission}", {"tokens": len(issued)}
            )
    except AppError as exc:
        _fail(exc)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "name", "token"])
    writer.writerows(
        [safe_cell(o.observer_code), safe_cell(o.observer_name), o.token] for o in issued
    )
    if csv_file:
        csv_file.touch(mode=0o600)
        csv_file.chmod(0o600)
        csv_file.write_text(out.getvalue(), encoding="utf-8")
        console.print(f"{len(issued)} observer token(s) written to {csv_file} (shown once)")
        return
    table = Table("code", "name", "token", title=f"{len(issued)} observer token(s), shown once")
    for o in issued:
        table.add_row(o.observer_code, o.observer_name, o.token)
    console.print(table)


@token_app.command("revoke")
def token_revoke(mission: MissionOpt, credential_id: uuid.UUID) -> None:
    """Revoke a credential at once."""
    from api.services import credentials

    try:
        with session_scope() as s:
            credentials.revoke(s, mission, credential_id)
            audit.record_cli(s, mission, "token revoke", f"credential/{credential_id}")
    except AppError as exc:
        _fail(exc)
    console.print(f"credential {credential_id} revoked")


def _answers(url: str) -> bool:
    """Is a Pollcheck server there (a server bound to every address answers on loopback)?"""
    import httpx

    probe = url.replace("://0.0.0.0", "://127.0.0.1").rstrip("/") + "/healthz"
    try:
        return httpx.get(probe, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@token_app.command("qr")
def token_qr(
    mission: MissionOpt,
    observer: Annotated[
        list[str] | None, typer.Option("--observer", "-o", help="Observer code (repeatable)")
    ] = None,
    all_observers: Annotated[bool, typer.Option("--all", help="Every observer")] = False,
    base_url: Annotated[
        str | None,
        typer.Option(help="Address phones reach the server at, e.g. https://poll.example.org"),
    ] = None,
    sheet: Annotated[
        Path | None, typer.Option(help="Write a printable HTML page of sign-in cards here")
    ] = None,
    revoke_previous: Annotated[
        bool,
        typer.Option(
            "--revoke-previous", help="Revoke the observers' earlier tokens (lost or old cards)"
        ),
    ] = False,
    collect: Annotated[
        bool,
        typer.Option(
            "--collect", help="Codes for ODK Collect (its settings QR) instead of the web app"
        ),
    ] = False,
) -> None:
    """Issue observer tokens as QR codes: scanning one signs a phone in to the web app, or
    (--collect) sets ODK Collect up with the observer's forms."""
    import sys

    from api.services import signin_qr
    from models import Mission

    if bool(observer) == all_observers:
        err.print("[red]name observers with --observer CODE, or give --all[/red]")
        raise typer.Exit(2)
    s = get_settings()
    url = base_url or f"http://{s.host}:{s.port}"
    if base_url is None and not _answers(url):
        err.print(
            f"[red]no Pollcheck server answers at {url}[/red]: pass --base-url with the address "
            "phones reach the server at, or export POLLCHECK_PORT (and POLLCHECK_HOST) as the "
            "server has them"
        )
        raise typer.Exit(1)
    if signin_qr.is_local(url):
        err.print(
            f"[yellow]note[/yellow]: phones cannot reach {url}; pass --base-url with the address "
            "they use (HTTPS lets the app work offline)"
        )
    try:
        with session_scope() as ses:
            cards = signin_qr.issue_cards(
                ses, mission, None if all_observers else observer, url, revoke_previous, collect
            )
            for card in cards:
                if card.revoked:
                    audit.record_cli(
                        ses,
                        mission,
                        "token qr --revoke-previous",
                        f"observer/{card.code}",
                        {"revoked": card.revoked},
                    )
            found = ses.get(Mission, mission)
            page = signin_qr.sheet(found, cards) if sheet and found else None
    except AppError as exc:
        _fail(exc)
    revoked = sum(c.revoked for c in cards)
    if revoke_previous:
        console.print(f"{revoked} earlier token(s) revoked: old cards no longer sign in")
    if sheet and page:
        sheet.write_text(page, encoding="utf-8")
        sheet.chmod(0o600)
        console.print(f"{len(cards)} sign-in card(s) written to {sheet}: print, cut, hand over")
        return
    for card in cards:
        console.print(f"\n[bold]{card.name}[/bold] ({card.code}) {' '.join(card.stations)}")
        sys.stdout.write(signin_qr.terminal_qr(card.qr))
        if collect:
            # Collect can also be set up by hand: Settings, Server, this URL.
            sys.stdout.write(signin_qr.collect_url(url, card.token) + "\n")
            sys.stdout.flush()
            continue
        sys.stdout.write(card.url + "\n")
        # Without a camera: the address to open and the code to type there.
        sys.stdout.write(f"{card.app}  {card.token}\n")
        sys.stdout.flush()


@template_app.command("load")
def template_load(
    path: Path,
    mission: MissionOpt,
    publish: Annotated[bool, typer.Option(help="Publish it (it then never changes)")] = False,
) -> None:
    """Check a template file (YAML or JSON) and store it as a draft or published version."""
    from api.services import templates

    try:
        definition = templates.parse_definition(_read_text(path), str(path))
        with session_scope() as s:
            tpl = templates.create(s, mission, definition, publish=publish)
            target = f"template/{tpl.code}/{tpl.version}"
            audit.record_cli(s, mission, "template load", target, {"publish": publish})
    except AppError as exc:
        _fail(exc)
    console.print(f"template {tpl.code} version {tpl.version}: {tpl.status}")


@template_app.command("check")
def template_check(path: Path) -> None:
    """Check a template file without a database."""
    from api.services import templates

    try:
        d = templates.parse_definition(_read_text(path), str(path))
    except AppError as exc:
        _fail(exc)
    n = sum(len(s.questions) for s in d.sections)
    console.print(
        f"{path}: template {d.code} version {d.version}, {len(d.sections)} sections, "
        f"{n} questions: OK"
    )


@sms_app.command("card")
def sms_card(
    template: Annotated[
        str, typer.Option(help="A template file (YAML/JSON), `default`, or a code with --mission")
    ] = "default",
    lang: Annotated[str, typer.Option(help="Language of the labels")] = "en",
    mission: Annotated[
        uuid.UUID | None, typer.Option("--mission", "-m", help="Mission whose template to use")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Template version (newest published)")] = None,
    prefix: Annotated[
        str | None, typer.Option(help="Message prefix (the mission's if set)")
    ] = None,
) -> None:
    """Print the observers' SMS card: question codes, answer codes and an example."""
    from api.services import templates
    from api.services.sms.card import build_card
    from api.services.sms.config import sms_settings
    from api.services.sms.templates import sms_template
    from models import Mission

    try:
        if mission is not None:
            with session_scope() as s:
                found = s.get(Mission, mission)
                if found is None:
                    err.print(f"[red]no mission {mission}[/red]")
                    raise typer.Exit(1)
                config = sms_settings(found.settings)
                _, _, definition = sms_template(s, mission, config, template, version)
                prefix = prefix or config.prefix
        elif template == "default":
            definition = templates.default_definition()
        else:
            definition = templates.parse_definition(_read_text(Path(template)), template)
    except AppError as exc:
        _fail(exc)
    sys.stdout.write(build_card(definition, lang, prefix).text)


@app.command("export")
def export_data(
    kind: Annotated[
        str, typer.Argument(help="checklists, findings, counting, incidents, critical or stations")
    ],  # fmt: skip
    mission: MissionOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, xlsx or geojson")] = "csv",
    versions: Annotated[str, typer.Option(help="latest, all or counting")] = "latest",
    values: Annotated[str, typer.Option(help="codes or labels")] = "codes",
    lang: Annotated[str | None, typer.Option(help="Language of labels")] = None,
    location: Annotated[str | None, typer.Option(help="A place: 'Region/District'")] = None,
    abroad: Annotated[bool | None, typer.Option(help="Only abroad / in-country")] = None,
    phase: Annotated[str | None, typer.Option(help="Only one phase")] = None,
    team: Annotated[str | None, typer.Option(help="Only one team")] = None,
    template: Annotated[str | None, typer.Option(help="Template code")] = None,
) -> None:
    """Write an export to a file, as the API serves it, with a progress bar (recorded in
    the audit trail as done with the command line)."""
    from api.services.exports import service
    from api.services.exports.checklists import count_checklists
    from api.services.exports.common import Format, Kind, Options, Values, Versions, snapshot
    from api.services.findings.scope import Filters

    try:
        k, f = Kind(kind), Format(fmt)
        options = Options(Versions(versions), Values(values), lang)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    filters = Filters(location=location, abroad=abroad, phase=phase, team=team, template=template)
    tmp = output.with_name(output.name + ".part")
    try:
        service.check_format(k, f)
        with snapshot() as session:
            export = service.build(session, get_settings(), k, mission, filters, options)
            total = None
            if k == Kind.checklists:
                total = count_checklists(session, export.meta["scope"], versions)
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())  # fmt: skip
            with Progress(*columns, console=err) as progress, tmp.open("wb") as out:
                task = progress.add_task(f"{k.value} → {output.name}", total=total)
                for chunk in service.chunks(
                    export, f, progress=lambda n: progress.advance(task, n)
                ):
                    out.write(chunk)
        tmp.replace(output)
        done = {
            "format": f.value,
            "filters": filters.key(),
            "options": options.key(k),
            "data_version": export.data_version,
        }
        with session_scope() as s:
            audit.record_cli(s, mission, f"export {k.value}", str(output), done)
    except AppError as exc:
        tmp.unlink(missing_ok=True)
        _fail(exc)
    console.print(f"{output}: {export.title}")


@app.command()
def fold(
    once: Annotated[bool, typer.Option("--once", help="Fold what is pending, then exit")] = False,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between folds (default: the setting)")
    ] = None,
) -> None:
    """Keep the findings tallies current, in a process of its own.

    Run it beside API processes started with POLLCHECK_FINDINGS_FOLD_ELSEWHERE=true, so that
    the fold has a core (or a machine) of its own. Any number may run: one folds at a time.
    """
    from api import memory, notify
    from api.db import set_process_role
    from api.services.findings import fold as fold_service

    set_process_role("fold")
    if once:
        total = 0
        while (result := fold_service.run_once()).changes:
            total += result.changes
        if not result.folded:
            console.print("another process is folding; nothing done here")
        console.print(f"folded {total} changes")
        return
    seconds = interval if interval is not None else get_settings().findings_fold_interval_s
    if seconds <= 0:
        err.print("[red]the fold interval must be above 0[/red]")
        raise typer.Exit(1)
    settings = get_settings()
    folder = fold_service.BackgroundFolder(
        seconds, settings.findings_vacuum_interval_s, listen=notify.listen_address(settings)
    )
    how = " and whenever changes are announced" if folder.listen else ""
    console.print(f"folding every {seconds:g} s{how}; Ctrl-C stops")
    signal.signal(signal.SIGTERM, lambda *_: folder.stop())
    memory.settle()
    with contextlib.suppress(KeyboardInterrupt):
        folder.run()


@app.command()
def statement(
    mission: MissionOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write")],
    lang: Annotated[str | None, typer.Option(help="Language (default: the mission's)")] = None,
    docx: Annotated[
        bool, typer.Option("--docx/--markdown", help="A Word document (default) or Markdown")
    ] = True,
    base_url: Annotated[
        str, typer.Option(help="Server address the annex's checklist links start with")
    ] = "",
) -> None:
    """Write the draft preliminary statement, as a Word document with footnotes or Markdown."""
    from api.services.findings import fold as fold_service
    from api.services.findings import views
    from api.services.findings.scope import Filters
    from api.services.findings.word import statement_docx
    from models.views import StatementSection

    while fold_service.run_once().changes:  # the findings as of now
        pass
    try:
        with session_scope() as s:
            drafted = views.compute_as(StatementSection, s, mission, "statement", Filters(), lang)
    except AppError as exc:
        _fail(exc)
    if docx:
        out.write_bytes(statement_docx(drafted, base_url.rstrip("/")))
    else:
        out.write_text(drafted.markdown, encoding="utf-8")
    console.print(f"draft statement written to {out}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes")] = None,
) -> None:
    """Run the API with uvicorn."""
    import uvicorn

    from api.server import uvicorn_options

    s = get_settings()
    uvicorn.run(
        "api.main:app",
        host=host or s.host,
        port=port or s.port,
        workers=workers or s.workers,
        log_level="info",
        proxy_headers=True,
        **uvicorn_options(s),
        # Open event streams never finish by themselves: a restart gives requests in flight
        # a few seconds, then ends the streams (consoles reconnect with Last-Event-ID).
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    app()
