"""Tests of pylvmetad.metad."""
