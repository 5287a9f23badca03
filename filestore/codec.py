"""How the items a repository hands out map to and from the JSON documents in its files."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

Document = dict[str, Any]
T = TypeVar("T")


class Codec(Protocol[T]):
    """How the items a repository hands out map to and from their JSON documents.

    ``load`` raises ``ValueError`` for a document that is not a valid item:
    the file is then quarantined like one that does not parse.

    ``revised`` is what ``load`` would make of the document of ``item``
    written as ``revision``: the repository's answer after a write, without
    reading back and checking a document it has just made from an item.
    """

    def load(self, document: Document) -> T: ...

    def dump(self, item: T) -> Document: ...

    def revised(self, item: T, revision: int) -> T: ...


class DocumentCodec:
    """Items are the documents themselves."""

    def load(self, document: Document) -> Document:
        return document

    def dump(self, item: Document) -> Document:
        return item

    def revised(self, item: Document, revision: int) -> Document:
        return {**item, "revision": revision}
