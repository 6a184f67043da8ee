"""Evaluation: predict with a protocol, score with a confusion matrix, report and draw the results.

- :mod:`~segkit.evaluation.predict`: the prediction protocols (whole image, fixed input, sliding window, MS+flip).
- :mod:`~segkit.evaluation.metrics`: the confusion matrix and mIoU.
- :mod:`~segkit.evaluation.evaluator`: stream a data set through a protocol (``evaluate``).
- :mod:`~segkit.evaluation.report`: the JSON report and the prediction writer.
- :mod:`~segkit.evaluation.viz`: coloured masks, overlays (contours, legends sized to the image), side-by-side
  pictures, legend images; the class colours and names. :mod:`~segkit.evaluation.style`: their defaults (light).
- :mod:`~segkit.evaluation.protocol`: the protocol an image gets (a fixed-size model fits large photos) and its name.
- :mod:`~segkit.evaluation.command`: what ``segkit test`` and ``segkit infer`` do with a loaded model
  (``evaluate_model``, ``segment_images``); :mod:`segkit.export.source` loads the model a command names and calls them.
"""
