"""The station shell: the homes the daemon (:mod:`edge.daemon`) wires together.

* :mod:`~edge.station.inputs`: the reactor's typed inputs (eye edge, scan, tag, photo,
  grade, lane input, encoder count, resume, policy, alarm), one ``match`` in the daemon.
* :mod:`~edge.station.devices`: ``DeviceBank`` builds, self-tests and closes every device
  through the driver registry; device health.
* :mod:`~edge.station.gates`: ``GateBank``, the only code that energises a gate (per-parcel
  holds, withdrawals, gate-test pulse, release all).
* :mod:`~edge.station.commands`: the command handlers the link runs (``gate_test``).
* :mod:`~edge.station.camera`: ``CameraStation``, a photo per inducted parcel (tag: its id),
  graded off the sort path, grades and camera reads back to the core by parcel id.
* :mod:`~edge.station.events`: ``build_parcel_event``, the parcel event (pure).
* :mod:`~edge.station.policy`: the pushed disposition policy, parsed, checked and cached.
* :mod:`~edge.station.status`: the station status dict.
"""
