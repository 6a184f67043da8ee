"""Analysis: parameters and multiply-adds (Table 7, :mod:`~segkit.analysis.complexity`), the compute/mIoU
trade-off table (:mod:`~segkit.analysis.tradeoff`) and its plot (:mod:`~segkit.analysis.plot`); what the
``segkit complexity``, ``summary`` and ``tradeoff`` commands run: :mod:`~segkit.analysis.command`.
"""
