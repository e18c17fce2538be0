"""The station shell: the homes the daemon wires together.

* :mod:`~edge.station.devices`: ``DeviceBank`` builds, self-tests and closes every device
  through the driver registry; device health.
* :mod:`~edge.station.status`: the station status dict.
"""
