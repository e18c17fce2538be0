"""The lowest hardware layer, faked: what the simulator and the tests plug the real drivers into.

* :mod:`simulator.hw.mfrc522_emu`: an MFRC522 register-level emulator with ISO/IEC 14443-3
  type A virtual tags (4-, 7- and 10-byte UIDs), behind a fake SPI device.
* :mod:`simulator.hw.fake_modules`: stand-ins for the ``spidev`` and ``RPi.GPIO`` extension
  modules, put into ``sys.modules`` before the real ``mfrc522`` library is imported, so its
  register read/write code runs unchanged against the emulator.
* :mod:`simulator.hw.camera`: synthetic frames written to a real video file for OpenCV.
* :mod:`simulator.hw.indicator`: a checkweigher's indicator streaming Toledo continuous
  frames of the load the simulation sets into a pty, for the real pyserial backend.
* :mod:`simulator.hw.pins`: a gpiozero ``MockFactory`` whose pins record every state change
  to a file (so a test sees what a killed or crashed process left on its outputs).

Nothing above this layer is faked: gpiozero, pyserial, OpenCV and the ``mfrc522`` library
run their real code.
"""
