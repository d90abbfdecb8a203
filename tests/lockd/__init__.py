"""Tests of pylvmetad.lockd."""
