"""Analysis: parameters and multiply-adds (Table 7, :mod:`~segkit.analysis.complexity`), the compute/mIoU
trade-off table (:mod:`~segkit.analysis.tradeoff`) and its plot (:mod:`~segkit.analysis.plot`).
"""
