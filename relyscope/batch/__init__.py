"""The offline batch application: audit every answer of logged conversations into a resumable
results file (`audit_logs`), with a summary page and OpenInference annotations."""

from relyscope.batch.audit_logs import BatchSummary, audit_logs

__all__ = ["BatchSummary", "audit_logs"]
