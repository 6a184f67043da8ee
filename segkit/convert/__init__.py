"""Converters from other frameworks' files to segkit checkpoints (TFLite for now).

The TFLite modules need the optional ``tflite`` package (``pip install 'segkit[tflite]'``)
and import it only when a file is read.
"""
