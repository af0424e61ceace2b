"""The Document record that flows through the corpus refinery.

A document is its id, its text and free metadata. A step rejects a document by calling
:meth:`Document.reject`; it never drops one, so the pipeline can account for every input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    """``step:rule`` (for example ``gopher_quality:min_words``) once rejected, else None."""
    detail: str | None = None
    """Free-text explanation of the rejection (file and line for input errors, the duplicate's id, ...)."""

    @property
    def rejected(self) -> bool:
        return self.reason is not None

    def reject(self, step: str, rule: str, detail: str | None = None) -> None:
        self.reason = f"{step}:{rule}"
        self.detail = detail

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id, "text": self.text}
        for key, value in self.meta.items():
            if key not in ("id", "text", "reason", "detail"):
                row[key] = value
        if self.reason is not None:
            row["reason"] = self.reason
            row["detail"] = self.detail
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Document:
        meta = {k: v for k, v in row.items() if k not in ("id", "text", "reason", "detail")}
        return cls(id=str(row["id"]), text=row["text"] or "", meta=meta,
                   reason=row.get("reason"), detail=row.get("detail"))
