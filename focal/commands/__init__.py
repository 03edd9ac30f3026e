"""The commands of ``python -m focal`` (agree, demo, plot, bench) and what only they need: the installed
frameworks with their own autodiff, the demo's data set, the benchmarks' timing. Apart from the library:
``import focal`` imports none of this, and the losses import nothing from here.
"""
