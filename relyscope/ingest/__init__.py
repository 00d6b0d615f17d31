"""Log readers that turn logged conversations into Cases, keyed by the log's own ids.

`read_logs(paths)` reads OpenAI chat JSONL, OpenInference spans (OTLP JSON or Phoenix's flat
export), OTel GenAI spans and LangSmith run exports, detecting each file's format, and yields
one `LogRecord` per record: a `Case`, or a `CaseError` naming the record and the field.
"""

from relyscope.ingest.detect import detect_format, log_files, read_logs
from relyscope.ingest.records import FORMATS, FormatName, LogRecord

__all__ = ["FORMATS", "FormatName", "LogRecord", "detect_format", "log_files", "read_logs"]
