"""Untrusted text in Streamlit elements that render Markdown (toasts, captions)."""

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$])")


def escape_markdown(text: str) -> str:
    """Backslash every Markdown and HTML metacharacter: the text shows as typed; links stay text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
