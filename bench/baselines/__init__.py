"""Baseline servers that ``bench/fanout.py`` measures Pulseboard against."""
