"""Tests for the detection engine (mcpwarden.detect) and its training pipeline."""
