"""Report writers: JSON, HTML, Markdown, JUnit XML."""
