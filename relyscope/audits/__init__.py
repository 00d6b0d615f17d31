"""Audit methods: provenance, leave-one-out, ablation, tool ablation, tracing, metrics."""
