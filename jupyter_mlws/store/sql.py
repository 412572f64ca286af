"""The SQLAlchemy store: SQLite inside the workspace by default, PostgreSQL for a team.

SQLite runs in WAL mode; writers take the database lock up front (``BEGIN IMMEDIATE``) so that
version numbers are handed out one writer at a time. On PostgreSQL the per-name counter row is
locked with ``SELECT ... FOR UPDATE`` instead. Both give contiguous versions under concurrency.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, false, func, or_, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from jupyter_mlws.assets import entity_class
from jupyter_mlws.assets.base import Asset
from jupyter_mlws.errors import AssetNotFoundError, StoreError, VersionConflictError
from jupyter_mlws.store.base import AbstractStore, NewVersion
from jupyter_mlws.store.endpoints_sql import EndpointStoreMixin
from jupyter_mlws.store.jobs_sql import JobStoreMixin
from jupyter_mlws.store.retrying import reading, retry_locked, sqlite_folder, translate
from jupyter_mlws.store.rows import (
    AssetNameRow,
    AssetTagRow,
    AssetVersionRow,
    EnvironmentBuildRow,
    JobRow,
    MetaRow,
    SecretRow,
    utcnow,
)

#: The newest migration; the store migrates on open when the database is behind it.
HEAD_REVISION = "0005"
BUSY_TIMEOUT_MS = 60_000


def _to_entity(row: AssetVersionRow) -> Asset:
    cls = entity_class(row.kind)
    return cls.model_construct(**row.to_entity_dict())


class SqlStore(JobStoreMixin, EndpointStoreMixin, AbstractStore):
    """:class:`AbstractStore` on SQLAlchemy 2.

    Every write method is one transaction (:meth:`_writing`) and is run again as a whole while
    the database is locked (:func:`~jupyter_mlws.store.retrying.retry_locked`).
    ``busy_timeout_ms`` is how long SQLite itself waits for the write lock on each attempt.
    """

    def __init__(
        self, uri: str, *, lock_dir: Path | None = None, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        self.uri = uri
        self.is_sqlite = uri.startswith("sqlite")
        self.busy_timeout_ms = busy_timeout_ms
        self.retry_budget_s = max(2 * busy_timeout_ms / 1000, 5.0)
        try:
            self.engine = self._make_engine(uri, immediate=False, busy_ms=busy_timeout_ms)
            # SQLite: a second engine whose transactions take the write lock at BEGIN.
            self.write_engine = (
                self._make_engine(uri, immediate=True, busy_ms=busy_timeout_ms)
                if self.is_sqlite
                else self.engine
            )
        except (SQLAlchemyError, ModuleNotFoundError) as exc:
            raise StoreError(
                f"Cannot open the store {self._safe_uri()}: {exc}",
                hint="For PostgreSQL install the driver: pip install 'jupyter_mlws[postgres]'.",
            ) from None
        self._read = reading(self, sessionmaker(self.engine, expire_on_commit=False))
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        try:
            self._migrate(lock_dir)
        except DBAPIError as exc:  # locked through the busy timeout, disk full...
            raise translate(self, exc) from None

    def _safe_uri(self) -> str:
        """The URI without a password, for messages."""
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.uri).render_as_string(hide_password=True)
        except Exception:
            return "<store uri>"

    def _database_folder(self) -> str:
        """Where the database lives, for a disk-full message."""
        if self.is_sqlite:
            return sqlite_folder(self.uri)
        return f"the database server of {self._safe_uri()}"

    def _on_locked(self, attempt: int) -> None:
        """Called after attempt ``attempt`` of a write found the database locked (a hook)."""

    @staticmethod
    def _make_engine(uri: str, *, immediate: bool, busy_ms: int = BUSY_TIMEOUT_MS) -> Engine:
        if not uri.startswith("sqlite"):
            # a server that is down answers within the timeout (MLWS_STORE_TIMEOUT, seconds)
            args = {} if "connect_timeout" in uri else {
                "connect_timeout": int(os.environ.get("MLWS_STORE_TIMEOUT", "10") or 10)}
            return create_engine(uri, pool_pre_ping=True, connect_args=args)
        engine = create_engine(
            uri, connect_args={"timeout": busy_ms / 1000, "check_same_thread": False}
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    # --- migrations ----------------------------------------------------------------------------

    def _current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, SQLAlchemyError):
            return None

    def _migrate(self, lock_dir: Path | None) -> None:
        if self._current_revision() == HEAD_REVISION:
            return
        from filelock import FileLock

        from jupyter_mlws.store.migrate import upgrade

        lock = FileLock(str((lock_dir or Path(".")) / ".migrate.lock"))
        with lock:
            if self._current_revision() != HEAD_REVISION:
                upgrade(self.write_engine)

    # --- sessions ------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """One write transaction: commits when the block ends, rolls back when it raises.

        It yields once; retrying a locked database is the job of :func:`retry_locked` around
        the whole store method.
        """
        session = self._write_sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # job writes (JobStoreMixin) are retried like every other write
    create_job = retry_locked(JobStoreMixin.create_job)
    transition_job = retry_locked(JobStoreMixin.transition_job)
    update_job = retry_locked(JobStoreMixin.update_job)
    request_cancel = retry_locked(JobStoreMixin.request_cancel)
    add_metrics = retry_locked(JobStoreMixin.add_metrics)
    set_job_params = retry_locked(JobStoreMixin.set_job_params)
    set_job_io = retry_locked(JobStoreMixin.set_job_io)
    create_endpoint = retry_locked(EndpointStoreMixin.create_endpoint)
    update_endpoint = retry_locked(EndpointStoreMixin.update_endpoint)
    delete_endpoint = retry_locked(EndpointStoreMixin.delete_endpoint)
    put_deployment = retry_locked(EndpointStoreMixin.put_deployment)
    delete_deployment = retry_locked(EndpointStoreMixin.delete_deployment)

    def _lock_name(self, s: Session, kind: str, name: str) -> AssetNameRow:
        stmt = select(AssetNameRow).where(AssetNameRow.kind == kind, AssetNameRow.name == name)
        if not self.is_sqlite:
            stmt = stmt.with_for_update()
        row = s.scalar(stmt)
        if row is not None:
            return row
        try:
            with s.begin_nested():
                s.add(AssetNameRow(kind=kind, name=name, next_version=1, next_seq=1))
        except IntegrityError:
            pass  # another writer created it first; lock theirs
        row = s.scalar(stmt)
        assert row is not None
        return row

    # --- writes -------------------------------------------------------------------------------

    @retry_locked
    def create_version(self, new: NewVersion) -> tuple[Asset, bool]:
        with self._writing() as s:
            counter = self._lock_name(s, new.kind, new.name)
            version = new.version
            if version is not None:
                existing = self._row(s, new.kind, new.name, version)
                if existing is not None:
                    if existing.content_hash == new.content_hash:
                        return _to_entity(existing), False
                    raise VersionConflictError(
                        f"{new.kind} {new.name}:{version} already exists with different content.",
                        hint="Versions are immutable: leave the version out to get the next one, "
                        "or choose another version.",
                    )
                if version.isdigit():
                    counter.next_version = max(counter.next_version, int(version) + 1)
            else:
                if new.reuse_identical_latest:
                    latest = self._latest_row(s, new.kind, new.name)
                    if latest is not None and latest.content_hash == new.content_hash:
                        return _to_entity(latest), False
                n = counter.next_version
                while self._row(s, new.kind, new.name, str(n)) is not None:
                    n += 1
                version = str(n)
                counter.next_version = n + 1
            row = AssetVersionRow(
                kind=new.kind,
                name=new.name,
                version=version,
                seq=counter.next_seq,
                content_hash=new.content_hash,
                spec=json.dumps(new.spec, sort_keys=True),
                description=new.description,
                archived=False,
                hidden=new.hidden,
                curated=new.curated,
                env_hash=new.env_hash,
                job_id=new.job_id,
                created_at=utcnow(),
                created_by=new.created_by,
            )
            row.tags = [AssetTagRow(key=k, value=v) for k, v in sorted(new.tags.items())]
            counter.next_seq += 1
            s.add(row)
            s.flush()
            if new.secret:
                s.add(SecretRow(asset_id=row.id, secret=json.dumps(new.secret)))
            entity = _to_entity(row)
        return entity, True

    @retry_locked
    def set_archived(self, kind: str, name: str, version: str | None, archived: bool) -> int:
        with self._writing() as s:
            cond = [AssetVersionRow.kind == kind, AssetVersionRow.name == name]
            if version is not None:
                cond.append(AssetVersionRow.version == version)
            result = s.execute(update(AssetVersionRow).where(*cond).values(archived=archived))
            rows = getattr(result, "rowcount", 0)
            if not rows:
                raise self._not_found(s, kind, name, version)
            return int(rows)

    @retry_locked
    def update_metadata(
        self,
        kind: str,
        name: str,
        version: str,
        *,
        description: str | None = None,
        set_tags: Mapping[str, str] | None = None,
        remove_tags: list[str] | None = None,
    ) -> Asset:
        with self._writing() as s:
            row = self._row(s, kind, name, version)
            if row is None:
                raise self._not_found(s, kind, name, version)
            if description is not None:
                row.description = description
            current = {t.key: t for t in row.tags}
            for key in remove_tags or []:
                if key in current:
                    row.tags.remove(current.pop(key))
            for key, value in (set_tags or {}).items():
                if key in current:
                    current[key].value = value
                else:
                    row.tags.append(AssetTagRow(key=key, value=value))
            s.flush()
            return _to_entity(row)

    @retry_locked
    def set_meta(self, key: str, value: str) -> None:
        with self._writing() as s:
            row = s.get(MetaRow, key)
            if row is None:
                s.add(MetaRow(key=key, value=value))
            else:
                row.value = value

    # --- reads --------------------------------------------------------------------------------

    @staticmethod
    def _row(s: Session, kind: str, name: str, version: str) -> AssetVersionRow | None:
        return s.scalar(
            select(AssetVersionRow).where(
                AssetVersionRow.kind == kind,
                AssetVersionRow.name == name,
                AssetVersionRow.version == version,
            )
        )

    @staticmethod
    def _latest_row(s: Session, kind: str, name: str) -> AssetVersionRow | None:
        return s.scalar(
            select(AssetVersionRow)
            .where(
                AssetVersionRow.kind == kind,
                AssetVersionRow.name == name,
                AssetVersionRow.archived == false(),  # equality: the index yields seq order
            )
            .order_by(AssetVersionRow.seq.desc())
            .limit(1)
        )

    def _not_found(
        self, s: Session, kind: str, name: str, version: str | None
    ) -> AssetNotFoundError:
        versions = s.scalars(
            select(AssetVersionRow.version)
            .where(AssetVersionRow.kind == kind, AssetVersionRow.name == name)
            .order_by(AssetVersionRow.seq.desc())
            .limit(10)
        ).all()
        if versions:
            if version is None:
                return AssetNotFoundError(
                    f"Every version of {kind} {name!r} is archived.",
                    hint=f"Restore one (`mlws {kind} restore {name} --version V`) or name a "
                    f"version: {', '.join(versions)}.",
                )
            return AssetNotFoundError(
                f"{kind} {name!r} has no version {version!r}.",
                hint=f"Known versions (newest first): {', '.join(versions)}.",
            )
        known = self.names(kind)
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        return AssetNotFoundError(
            f"No {kind} named {name!r}.",
            hint=f"Known {kind} names: {shown}." if known else f"No {kind} is registered yet.",
        )

    def get_version(
        self, kind: str, name: str, version: str | None = None, *, latest: bool = False
    ) -> Asset:
        with self._read() as s:
            row = (
                self._latest_row(s, kind, name)
                if version is None
                else self._row(s, kind, name, version)
            )
            if row is None:
                raise self._not_found(s, kind, name, version)
            return _to_entity(row)

    @staticmethod
    def _versions_query(
        what: Any,
        kind: str,
        name: str | None,
        *,
        tags: Mapping[str, str | None] | None,
        include_archived: bool,
        include_hidden: bool,
        name_contains: str | None,
        created_by: str | None = None,
    ) -> Any:
        """The SELECT of :meth:`list_versions` and :meth:`count_versions`: the versions of
        ``name``, or without a name the newest (unarchived, unless asked) version of each name.

        Without a name the query walks ``asset_names`` in name order and finds each latest
        version with one index seek, so a page costs its size, not the number of versions.
        """
        v = AssetVersionRow
        cond: list[Any] = [v.kind == kind]
        if not include_archived:
            cond.append(v.archived.is_(False))
        if name is not None:
            cond.append(v.name == name)
        elif not include_hidden:
            cond.append(v.hidden.is_(False))
        if name_contains:
            cond.append(func.lower(v.name).contains(name_contains.lower(), autoescape=True))
        if created_by is not None:  # that user, exactly or as user@<any host>
            cond.append(or_(v.created_by == created_by,
                            v.created_by.startswith(f"{created_by}@", autoescape=True)))
        for key, value in (tags or {}).items():
            t = aliased(AssetTagRow)
            tag_cond = [t.asset_id == v.id, t.key == key]
            if value is not None:
                tag_cond.append(t.value == value)
            cond.append(select(t.asset_id).where(*tag_cond).exists())
        if name is not None:
            return select(what).select_from(v).where(*cond)
        n = AssetNameRow
        x = aliased(AssetVersionRow)
        newest = select(x.id).where(x.kind == n.kind, x.name == n.name)
        if not include_archived:
            # an equality (not IS), so that the (kind, name, archived, seq) index gives seq order
            newest = newest.where(x.archived == false())
        latest_id = newest.order_by(x.seq.desc()).limit(1).correlate(n).scalar_subquery()
        return (
            select(what)
            .select_from(n)
            .join(v, v.id == latest_id)
            .where(n.kind == kind, *cond)
        )

    def list_versions(
        self,
        kind: str,
        name: str | None = None,
        *,
        tags: Mapping[str, str | None] | None = None,
        include_archived: bool = False,
        include_hidden: bool = False,
        limit: int | None = None,
        offset: int = 0,
        name_contains: str | None = None,
        created_by: str | None = None,
    ) -> list[Asset]:
        stmt = self._versions_query(
            AssetVersionRow, kind, name, tags=tags, include_archived=include_archived,
            include_hidden=include_hidden, name_contains=name_contains, created_by=created_by,
        )
        stmt = (
            stmt.order_by(AssetNameRow.name)
            if name is None
            else stmt.order_by(AssetVersionRow.seq.desc())
        )
        if offset:
            stmt = stmt.offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as s:
            return [_to_entity(r) for r in s.scalars(stmt).all()]

    def count_versions(
        self,
        kind: str,
        name: str | None = None,
        *,
        tags: Mapping[str, str | None] | None = None,
        include_archived: bool = False,
        include_hidden: bool = False,
        name_contains: str | None = None,
        created_by: str | None = None,
    ) -> int:
        stmt = self._versions_query(
            func.count(), kind, name, tags=tags, include_archived=include_archived,
            include_hidden=include_hidden, name_contains=name_contains, created_by=created_by,
        )
        with self._read() as s:
            return int(s.scalar(stmt) or 0)

    def names(self, kind: str, *, include_hidden: bool = False) -> list[str]:
        stmt = select(AssetVersionRow.name).where(AssetVersionRow.kind == kind)
        if not include_hidden:
            stmt = stmt.where(AssetVersionRow.hidden.is_(False))
        with self._read() as s:
            return list(s.scalars(stmt.distinct().order_by(AssetVersionRow.name)).all())

    def find_by_env_hash(self, env_hash: str) -> list[Asset]:
        with self._read() as s:
            rows = s.scalars(
                select(AssetVersionRow)
                .where(
                    AssetVersionRow.env_hash == env_hash
                    if len(env_hash) == 64
                    else AssetVersionRow.env_hash.startswith(env_hash, autoescape=True)
                )
                .order_by(AssetVersionRow.id)
            ).all()
            return [_to_entity(r) for r in rows]

    def find_by_job(self, job_id: str) -> list[Asset]:
        with self._read() as s:
            rows = s.scalars(select(AssetVersionRow).where(AssetVersionRow.job_id == job_id)
                             .order_by(AssetVersionRow.id)).all()
            return [_to_entity(r) for r in rows]

    def get_secret(self, kind: str, name: str, version: str) -> dict[str, Any] | None:
        with self._read() as s:
            value = s.scalar(
                select(SecretRow.secret)
                .join(AssetVersionRow, AssetVersionRow.id == SecretRow.asset_id)
                .where(
                    AssetVersionRow.kind == kind,
                    AssetVersionRow.name == name,
                    AssetVersionRow.version == version,
                )
            )
            return None if value is None else dict(json.loads(value))

    def put_secret(self, kind: str, name: str, version: str, secret: dict[str, Any]) -> None:
        from jupyter_mlws.store.secrets_sql import replace_secret

        replace_secret(self.write_engine, self.is_sqlite, kind, name, version, secret)

    def get_meta(self, key: str) -> str | None:
        with self._read() as s:
            row = s.get(MetaRow, key)
            return None if row is None else row.value

    def all_artifact_specs(self) -> list[dict[str, Any]]:
        with self._read() as s:
            out = []
            for spec in s.scalars(select(AssetVersionRow.spec)).all():
                data = json.loads(spec)
                if isinstance(data.get("artifact"), dict):
                    out.append(data["artifact"])
                build = data.get("build")
                if isinstance(build, dict) and build.get("tree_sha256"):
                    out.append({"kind": "folder", "sha256": build["tree_sha256"], "size": 0,
                                "name": "context"})
                if isinstance(data.get("code_artifact"), dict):
                    out.append(data["code_artifact"])
            for spec in s.scalars(select(JobRow.spec)).all():  # the code snapshot of each job
                job_spec = json.loads(spec)
                snapshot = job_spec.get("snapshot")
                if isinstance(snapshot, dict) and snapshot.get("sha256"):
                    out.append(snapshot)
                for key in ("files_tree", "ray_sent_tree", "ray_result_tree"):  # h-teamray
                    if isinstance(job_spec.get(key), str):  # a job's published/sent files
                        out.append({"kind": "folder", "sha256": job_spec[key], "size": 0,
                                    "name": key})
            return out

    # --- environment builds ---------------------------------------------------------------------

    @retry_locked
    def record_build(
        self,
        env_hash: str,
        builder: str,
        *,
        status: str,
        environment: str | None = None,
        result: dict[str, Any] | None = None,
        log: str | None = None,
        error: str | None = None,
    ) -> None:
        with self._writing() as s:
            row = s.get(EnvironmentBuildRow, (env_hash, builder))
            if row is None:
                row = EnvironmentBuildRow(env_hash=env_hash, builder=builder, log="")
                s.add(row)
            if status == "building":
                row.started_at = utcnow()
                row.finished_at = None
                row.error = None
                row.log = ""
            else:
                row.finished_at = utcnow()
            row.status = status
            if environment is not None and (row.environment is None or status == "building"):
                row.environment = environment
            if result is not None:
                row.result = json.dumps(result, default=str)
            if log is not None:
                row.log = log
            if error is not None:
                row.error = error

    def get_build(self, env_hash: str, builder: str) -> dict[str, Any] | None:
        with self._read() as s:
            row = s.get(EnvironmentBuildRow, (env_hash, builder))
            if row is None:
                return None
            data = row.to_dict()
            data["log"] = row.log
            return data

    def list_builds(self, builder: str | None = None) -> list[dict[str, Any]]:
        stmt = select(EnvironmentBuildRow)
        if builder is not None:
            stmt = stmt.where(EnvironmentBuildRow.builder == builder)
        with self._read() as s:
            return [r.to_dict() for r in s.scalars(stmt).all()]

    def close(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
