"""The releases of each lambda, changed under the lambda's row lock."""

from __future__ import annotations

from conveyor.store.records import LambdaReleases, ReleaseChange
from conveyor.store.sql._core import Connection, SqlCore
from conveyor.store.sql._rows import RELEASE_COLUMNS, as_int, release_of

_RELEASE_UPSERT = (
    "INSERT INTO releases (lambda, version, state, started_ms, decided_ms, reason, figures) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (lambda, version) DO UPDATE SET "
    "state = excluded.state, started_ms = excluded.started_ms, "
    "decided_ms = excluded.decided_ms, reason = excluded.reason, figures = excluded.figures"
)


class ReleasesSql(SqlCore):
    """The releases of each lambda, changed under the lambda's row lock."""

    async def lambda_releases(self, lambda_name: str) -> LambdaReleases:
        return await self._in_reader(lambda: self._lambda_releases(self._rc, lambda_name))

    def _lambda_releases(self, conn: Connection, lambda_name: str) -> LambdaReleases:
        head = conn.execute(
            self._sql("SELECT revision, policy FROM release_lambdas WHERE lambda = ?"),
            (lambda_name,),
        ).fetchone()
        rows = conn.execute(
            self._sql(
                f"SELECT {RELEASE_COLUMNS} FROM releases WHERE lambda = ? "
                "ORDER BY started_ms, version"
            ),
            (lambda_name,),
        ).fetchall()
        if head is None:
            return LambdaReleases(lambda_name, releases=tuple(map(release_of, rows)))
        revision, policy = head
        return LambdaReleases(
            lambda_name,
            as_int(revision),
            None if policy is None else str(policy).encode(),
            tuple(map(release_of, rows)),
        )

    async def release_revisions(self) -> dict[str, int]:
        rows = await self._in_reader(
            lambda: self._read("SELECT lambda, revision FROM release_lambdas")
        )
        return {str(name): as_int(revision) for name, revision in rows}

    def _hold_lambda(self, lambda_name: str) -> None:
        """Create the lambda's row if needed and lock it to the end of the transaction."""
        self._x(
            "INSERT INTO release_lambdas (lambda, policy, revision) VALUES (?, NULL, 0) "
            "ON CONFLICT (lambda) DO NOTHING",
            (lambda_name,),
        )
        self._x(
            "SELECT revision FROM release_lambdas WHERE lambda = ?" + self.lock_for_update,
            (lambda_name,),
        ).fetchone()

    async def change_releases(self, lambda_name: str, change: ReleaseChange) -> LambdaReleases:
        def run() -> LambdaReleases:
            self._hold_lambda(lambda_name)
            before = self._lambda_releases(self._wc, lambda_name)
            written = change(list(before.releases))  # raises to refuse: nothing written
            if written:
                self._xmany(
                    _RELEASE_UPSERT,
                    [
                        (lambda_name, r.version, r.state, r.started_ms, r.decided_ms, r.reason,
                         None if r.figures is None else r.figures.decode())
                        for r in written
                    ],
                )  # fmt: skip
                self._bump(lambda_name)
            return self._lambda_releases(self._wc, lambda_name)

        # A transaction of its own: its row lock never waits inside a batch of appends.
        return await self._solo(run)

    async def set_release_policy(self, lambda_name: str, policy: bytes | None) -> LambdaReleases:
        def run() -> LambdaReleases:
            self._hold_lambda(lambda_name)
            self._x(
                "UPDATE release_lambdas SET policy = ? WHERE lambda = ?",
                (None if policy is None else policy.decode(), lambda_name),
            )
            self._bump(lambda_name)
            return self._lambda_releases(self._wc, lambda_name)

        return await self._solo(run)

    def _bump(self, lambda_name: str) -> None:
        self._x(
            "UPDATE release_lambdas SET revision = revision + 1 WHERE lambda = ?", (lambda_name,)
        )
