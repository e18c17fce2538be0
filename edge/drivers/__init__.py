"""Device drivers: one interface module per device kind, one module per real backend.

Interfaces: :mod:`~edge.drivers.gpio` (photo-eye, gate, binary input, encoder),
:mod:`~edge.drivers.scanner`, :mod:`~edge.drivers.rfid`, :mod:`~edge.drivers.camera`,
:mod:`~edge.drivers.scale` (checkweigher).
Backends, named after their library and importing it at the top:
:mod:`~edge.drivers.gpiozero_io`, :mod:`~edge.drivers.pyserial_scanner`,
:mod:`~edge.drivers.pyserial_scale`, :mod:`~edge.drivers.mfrc522_reader`,
:mod:`~edge.drivers.opencv_camera`; serial backends share
:mod:`~edge.drivers.serial_port` (reader thread, reopen after an unplug).
:mod:`~edge.drivers.registry` builds every device (photo-eye, gates, lane inputs, outputs,
encoder, scanner, RFID reader, camera, checkweigher) by the backend its config section
names (never another one when that one cannot load); a new backend is added by
registering it there. Pure logic lives apart from I/O: :mod:`~edge.drivers.framing`
(serial codes), :class:`~edge.drivers.rfid.PresenceTracker`,
:class:`~edge.drivers.camera.FrameJudge`, :class:`~edge.drivers.pyserial_scale.ToledoFramer`
and :class:`~edge.drivers.scale.WeighingDetector`.
"""
