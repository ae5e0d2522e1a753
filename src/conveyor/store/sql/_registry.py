"""The schema registry: subjects, their versions, compatibility modes."""

from __future__ import annotations

from conveyor.store.records import StoredSchema, SubjectInfo, Verify
from conveyor.store.sql._core import SqlCore
from conveyor.store.sql._rows import SCHEMA_COLUMNS, Row, as_int, schema_of


class RegistrySql(SqlCore):
    """The schema registry: subjects, their versions, compatibility modes."""

    async def register_schema(
        self, candidate: StoredSchema, default_mode: str, verify: Verify
    ) -> tuple[StoredSchema, bool]:
        return await self._commit.submit(
            lambda: self._register_schema(candidate, default_mode, verify)
        )

    def _register_schema(
        self, candidate: StoredSchema, default_mode: str, verify: Verify
    ) -> tuple[StoredSchema, bool]:
        subject = candidate.subject
        self._x(
            "INSERT INTO subjects (name, compatibility) VALUES (?, NULL) "
            "ON CONFLICT (name) DO NOTHING",
            (subject,),
        )
        row = self._x(
            "SELECT compatibility FROM subjects WHERE name = ?" + self.lock_for_update,
            (subject,),
        ).fetchone()
        mode = str(row[0]) if row is not None and row[0] is not None else default_mode
        versions = [
            schema_of(r)
            for r in self._x(
                f"SELECT {SCHEMA_COLUMNS} FROM schemas WHERE subject = ? ORDER BY version",
                (subject,),
            ).fetchall()
        ]
        for existing in versions:
            if existing.fingerprint == candidate.fingerprint and existing.type == candidate.type:
                return existing, False
        verify(versions, mode)  # raises to refuse: nothing was written but the subject row
        number = versions[-1].version + 1 if versions else 1
        created = self._x(
            "INSERT INTO schemas (subject, version, type, definition, message, fingerprint, "
            "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (subject, number, candidate.type, candidate.definition, candidate.message,
             candidate.fingerprint, candidate.created_ms),
        ).fetchone()  # fmt: skip
        assert created is not None
        return (
            StoredSchema(
                as_int(created[0]),
                subject,
                number,
                candidate.type,
                candidate.definition,
                candidate.message,
                candidate.fingerprint,
                candidate.created_ms,
            ),
            True,
        )

    async def schemas_of(self, subject: str) -> list[StoredSchema]:
        rows = await self._in_reader(
            lambda: self._read(
                f"SELECT {SCHEMA_COLUMNS} FROM schemas WHERE subject = ? ORDER BY version",
                (subject,),
            )
        )
        return [schema_of(r) for r in rows]

    async def schema_by_id(self, schema_id: int) -> StoredSchema | None:
        row = await self._in_reader(
            lambda: self._read_one(
                f"SELECT {SCHEMA_COLUMNS} FROM schemas WHERE id = ?", (schema_id,)
            )
        )
        return None if row is None else schema_of(row)

    async def list_subjects(self) -> list[SubjectInfo]:
        def run() -> tuple[list[Row], list[Row]]:
            return (
                self._read("SELECT name, compatibility FROM subjects ORDER BY name"),
                self._read("SELECT subject, version FROM schemas ORDER BY subject, version"),
            )

        subjects, versions = await self._in_reader(run)
        by_subject: dict[str, list[int]] = {}
        for name, version in versions:
            by_subject.setdefault(str(name), []).append(as_int(version))
        return [
            SubjectInfo(
                str(name), None if mode is None else str(mode), by_subject.get(str(name), [])
            )
            for name, mode in subjects
        ]

    async def set_compatibility(self, subject: str | None, mode: str | None) -> None:
        def run() -> None:
            if subject is None:
                if mode is None:
                    self._x("DELETE FROM meta WHERE k = 'registry_compatibility'")
                else:
                    self._x(
                        "INSERT INTO meta (k, v) VALUES ('registry_compatibility', ?) "
                        "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                        (mode,),
                    )
                return
            self._x(
                "INSERT INTO subjects (name, compatibility) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET compatibility = excluded.compatibility",
                (subject, mode),
            )

        await self._commit.submit(run)

    async def default_compatibility(self) -> str | None:
        row = await self._in_reader(
            lambda: self._read_one("SELECT v FROM meta WHERE k = 'registry_compatibility'")
        )
        return None if row is None else str(row[0])
