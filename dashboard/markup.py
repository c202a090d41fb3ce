"""Publisher text (channel and series names, notification text, error reasons) shown as plain text.

Streamlit has no plain-text toast, subheader, metric label, caption or alert: they render Markdown (remark
with GFM and Streamlit's own extensions). ``escape_markdown`` turns any text into Markdown that renders as
exactly that text:

- a backslash before every ASCII punctuation character (CommonMark lets any of them be escaped): no
  emphasis, link, image, HTML, heading, list, code, table, LaTeX (``$``) or directive (``:red[...]``);
- a WORD JOINER (U+2060, invisible and zero-width) before every ``:``, ``@`` and ``.``: GFM finds bare
  URLs, ``www.`` and e-mail addresses, and Streamlit finds ``:material/name:`` and ``:emoji:`` shortcodes,
  in the text *after* the escapes are resolved, so a backslash alone does not stop them. ``http⁠://``,
  ``www⁠.``, ``a⁠@b⁠.c`` and ``⁠:smile⁠:`` match none of those patterns. (Text copied off the page keeps the
  joiners.)
- line breaks and runs of white space become one space: no paragraphs, no indented code blocks.

"""

import re
import string

WORD_JOINER = "\u2060"
_LINK_TRIGGERS = re.compile(r"(?=[:@.])")
_PUNCTUATION = re.compile(f"([{re.escape(string.punctuation)}])")


def escape_markdown(text: str) -> str:
    """Markdown that Streamlit renders as ``text``, on one line: no markup, no links, no shortcodes."""
    flat = " ".join(text.split())
    return _PUNCTUATION.sub(r"\\\1", _LINK_TRIGGERS.sub(WORD_JOINER, flat))
