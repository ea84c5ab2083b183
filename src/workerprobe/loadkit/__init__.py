"""Measurement code of the load profiles (load/): stream timing, failure causes, summaries.

Kept in the package so unit tests cover it; `load/locustfile.py` only wires it into Locust.
"""
