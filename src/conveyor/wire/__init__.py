"""The wire: the contract every side of Conveyor shares, with no side's machinery.

* :mod:`~conveyor.wire.schemas` — the HTTP API's request and response bodies (msgspec
  Structs), with :mod:`~conveyor.wire.dead_letters`, :mod:`~conveyor.wire.registry` and
  :mod:`~conveyor.wire.releases` for those resources;
* :mod:`~conveyor.wire.envelope` — the JSON error envelope: msgspec's errors read as the field
  and the rule, a :class:`~conveyor.errors.ConveyorError` written as a body;
* :mod:`~conveyor.wire.nesting` — the nesting limit every JSON body and payload is held to;
* :mod:`~conveyor.wire.push` — the push protocol between the platform and a worker;
* :mod:`~conveyor.wire.signing` — the signatures on pushes, made and checked;
* :mod:`~conveyor.wire.connections` — how either HTTP server (``conveyor serve``, the
  worker's push server) holds its connections, and the API's default address.

The layer rule (CONTRIBUTING.md): the server (``api``), the node's layers, the client and the
worker import the wire; the wire imports only ``model``, ``errors``, ``clock``, ``_ids``, the
codecs, and third-party libraries.
"""
