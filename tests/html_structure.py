"""The elements, attributes and text of an HTML document, to compare what two pages or renderings hold."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser


class Structure(HTMLParser):
    """Every element with its attribute names, every attribute, and the text of an HTML document."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements, self.attributes, self.text = Counter(), [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements[(tag, tuple(sorted(name for name, _ in attrs)))] += 1
        self.attributes += attrs

    def handle_data(self, data):
        self.text.append(data)
