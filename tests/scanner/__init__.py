"""Tests of pylvmetad.scanner."""
