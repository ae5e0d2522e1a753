"""The HTTP client's implementation; import it from :mod:`conveyor.client`."""
