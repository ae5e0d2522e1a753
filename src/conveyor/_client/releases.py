"""The release methods of :class:`~conveyor.AsyncClient`: a lambda's releases, promote, roll
back, and the release policy (see docs/releases.md)."""

from __future__ import annotations

import msgspec

from conveyor._client.checks import checked
from conveyor._client.http import HttpSession
from conveyor.wire.releases import LambdaReleases, ReleasePolicy

__all__ = ["ReleaseMethods"]

_RELEASES = msgspec.json.Decoder(LambdaReleases)
_POLICY = msgspec.json.Decoder(ReleasePolicy)


class ReleaseMethods:
    """Releases over the client's HTTP session (mixed into :class:`AsyncClient`)."""

    _http: HttpSession

    async def list_releases(self, lambda_name: str) -> LambdaReleases:
        """Read a lambda's releases.

        Raises:
            NotFound: the node knows no lambda of that name.
            InvalidRequest: the name is not a lambda name (``field`` ``/lambda``).

        Returns:
            Its stable version, its canary with the live figures of the answering node, the
            versions pending, its whole history (newest first) and its release policy.
        """
        answer = await self._http.request("GET", ["lambdas", lambda_name, "releases"])
        return self._http.decode(answer, _RELEASES)

    async def promote_release(self, lambda_name: str, version: str) -> LambdaReleases:
        """Make a version of a lambda stable now, whatever its state (a canary, a pending
        version, a rolled-back one); the stable version before it is superseded.

        Raises:
            NotFound: the lambda has no release of that version.

        Returns:
            The lambda's releases after the promotion.
        """
        path = ["lambdas", lambda_name, "releases", version, "promote"]
        return self._http.decode(await self._http.request("POST", path), _RELEASES)

    async def rollback_release(self, lambda_name: str, version: str) -> LambdaReleases:
        """Roll a version of a lambda back now: its endpoints get no pushes any more. Rolling
        back the stable version makes the version it superseded stable again.

        Raises:
            NotFound: the lambda has no release of that version.
            Conflict: the version is the lambda's first stable one: nothing to return to.

        Returns:
            The lambda's releases after the rollback.
        """
        path = ["lambdas", lambda_name, "releases", version, "rollback"]
        return self._http.decode(await self._http.request("POST", path), _RELEASES)

    async def get_release_policy(self, lambda_name: str) -> ReleasePolicy:
        """Read a lambda's release policy (the defaults when it was never set).

        Returns:
            The policy.
        """
        answer = await self._http.request("GET", ["lambdas", lambda_name, "release-policy"])
        return self._http.decode(answer, _POLICY)

    async def set_release_policy(self, lambda_name: str, policy: ReleasePolicy) -> ReleasePolicy:
        """Set a lambda's release policy; it applies to the trial under way too.

        Raises:
            InvalidRequest: a value breaks a rule (``field`` names it, ``rule`` the rule).

        Returns:
            The policy as stored.
        """
        answer = await self._http.request(
            "PUT", ["lambdas", lambda_name, "release-policy"], checked(policy)
        )
        return self._http.decode(answer, _POLICY)
