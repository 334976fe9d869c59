"""Temporal action segmentation, clip classification and transcripts on per-frame features.

- :mod:`vidpipe.segmentation.metrics`: MS-TCN's accuracy, edit score and F1@k; top-k accuracy and confusion
  matrix; transcript position accuracy and edit distance (numpy only).
- :mod:`vidpipe.segmentation.mstcn_format`: MS-TCN data set folders, prediction files, segments JSON,
  UCF-101 ``classInd.txt``.
- :mod:`vidpipe.segmentation.evaluate`: the ``vidpipe segmentation evaluate`` command.
- :mod:`vidpipe.segmentation.plots`: timeline images of ground truth and predictions.

The models live in :mod:`models.segmentation`, :mod:`models.clip_classifier` and :mod:`models.transcript`.
"""
