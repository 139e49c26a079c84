"""Text that people typed (run names, display names), made safe to show in Streamlit's Markdown.

Streamlit renders Markdown in st.markdown, captions, alerts, toasts, progress texts, widget labels
and tooltips: a name such as `![](http://host/x) [Session expired](http://host/p)` would make every
browser that shows it fetch the image and show the link. `shown` is the one place that turns a name
into Markdown that reads as the name itself; every page shows names through it (or through
fmnist.app.activity.run_label, which uses it). Names go in plain, unescaped, where Streamlit does not render
Markdown: a selectbox's options, a text input's value, a chart's data.
"""

import html
import re

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and escaped it is only
# itself: links, images, emphasis, code, headings, tables, HTML, LaTeX ($), Streamlit's own
# :colour[…] and :material/icon: directives and GitHub's autolinks (http\:// is no link) all need one.
MARKDOWN_SPECIAL = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def shown(name) -> str:
    """A name as Markdown that displays exactly its text, on one line."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(name).split()))


def in_chart(name) -> str:
    """A name as a Plotly chart's text (legends, hover): Plotly reads <a href>, <b> and entities in it as HTML."""
    return html.escape(" ".join(str(name).split()), quote=False)
