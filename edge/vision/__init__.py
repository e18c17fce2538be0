"""Condition grading from a parcel photo: pure functions over images (OpenCV, numpy, zxing-cpp).

* :mod:`edge.vision.calibration`: pixels to belt millimetres (ArUco board calibration).
* :mod:`edge.vision.grading`: belt background model, parcel segmentation, footprint (mm),
  damage measures, label presence and barcode (zxing-cpp), grade with confidence and
  explanation; thresholds come from the policy (:class:`edge.sorter.policy.GradingThresholds`).
* :mod:`edge.vision.photos`: JPEG evidence (hash, timestamp) and its retention on the station.
* evaluation (confusion matrix, accuracy): :mod:`simulator.vision.evaluate`, beside the generator.
"""
