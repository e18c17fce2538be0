"""The station shell: the homes the daemon wires together.

* :mod:`~edge.station.devices`: ``DeviceBank`` builds, self-tests and closes every device
  through the driver registry; device health.
* :mod:`~edge.station.gates`: ``GateBank``, the only code that energises a gate (per-parcel
  holds, withdrawals, gate-test pulse, release all).
* :mod:`~edge.station.commands`: the command handlers the link runs (``gate_test``).
* :mod:`~edge.station.status`: the station status dict.
"""
