"""Field types and base models the API's models share: bounded, NUL-free strings, aware
datetimes in a sane range, and the opaque keyset cursor of every list."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("may not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (a lone surrogate)") from None
    return value


def _sane_year(value: datetime) -> datetime:
    if not 1900 <= value.year <= 2200:
        raise ValueError("must be between the years 1900 and 2200")
    return value


Clean = AfterValidator(_no_nul)
Short = Annotated[str, StringConstraints(min_length=1, max_length=64), Clean]  # usernames
Label = Annotated[str, StringConstraints(max_length=100), Clean]
TypeName = Annotated[str, StringConstraints(min_length=1, max_length=100), Clean]
Name = Annotated[str, StringConstraints(max_length=200), Clean]
RequiredName = Annotated[str, StringConstraints(min_length=1, max_length=200), Clean]
Domain = Annotated[str, StringConstraints(min_length=1, max_length=253), Clean]
Email = Annotated[str, StringConstraints(min_length=3, max_length=320), Clean]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500), Clean]
LongText = Annotated[str, StringConstraints(max_length=10000), Clean]
Moment = Annotated[AwareDatetime, AfterValidator(_sane_year)]
Username = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PageQuery(Query):
    limit: int = Field(50, ge=1, le=200, description="items per page")
    cursor: str | None = Field(None, max_length=40,
                               description="next_cursor of the previous page")

    @field_validator("cursor")
    @classmethod
    def _decodes(cls, value: str | None) -> str | None:
        if value is not None:
            decode_cursor(value)
        return value

    @property
    def after(self) -> int | None:
        return None if self.cursor is None else decode_cursor(self.cursor)


def encode_cursor(after: int | None) -> str | None:
    return None if after is None else base64.urlsafe_b64encode(f"k{after}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise ValueError("is not a cursor this API gave out") from None
    if not text.startswith("k") or not text[1:].isdigit() or len(text) > 12:
        raise ValueError("is not a cursor this API gave out")
    return int(text[1:])
