"""The pages' HTML as a tree, parsed by the standard library, to read what a page shows."""

from __future__ import annotations

import dataclasses
import html.parser
import pathlib

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclasses.dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = dataclasses.field(default_factory=list)
    texts: list[str] = dataclasses.field(default_factory=list)

    @property
    def text(self) -> str:
        """The element's text with its descendants', whitespace collapsed."""
        return " ".join("".join(self._pieces()).split())

    def _pieces(self):
        yield from self.texts
        for child in self.children:
            yield " "
            yield from child._pieces()

    def find_all(self, tag: str | None = None, class_: str | None = None, **attrs: str) -> list[Element]:
        found = []
        for child in self.children:
            if ((tag is None or child.tag == tag) and (class_ is None or class_ in child.attrs.get("class", "").split())
                    and all(child.attrs.get(name.replace("_", "-")) == value for name, value in attrs.items())):
                found.append(child)
            found += child.find_all(tag, class_, **attrs)
        return found

    def find(self, tag: str | None = None, class_: str | None = None, **attrs: str) -> Element:
        (found,) = self.find_all(tag, class_, **attrs)[:1] or [None]
        assert found is not None, f"no <{tag} class={class_} {attrs}>"
        return found


class _Builder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].texts.append(data)


def parse(path: pathlib.Path | str) -> Element:
    """The page's tree; every element it opens must be closed, in order."""
    builder = _Builder()
    builder.feed(pathlib.Path(path).read_text(encoding="utf-8"))
    builder.close()
    assert builder.stack == [builder.root], f"unclosed: {[e.tag for e in builder.stack[1:]]}"
    return builder.root


def referenced_files(page: pathlib.Path, tree: Element) -> list[pathlib.Path]:
    """The local files the page's images and links name (not data: URIs, not anchors)."""
    names = [e.attrs["src"] for e in tree.find_all("img")] + [e.attrs["href"] for e in tree.find_all("a")]
    return [page.parent / name for name in names if not name.startswith(("data:", "#", "http"))]
