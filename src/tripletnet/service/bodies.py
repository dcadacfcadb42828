"""What requests carry: the JSON bodies (pydantic models), the multipart uploads, and the
OpenAPI description of routes that take either, generated from those models.

``/search`` and ``/items`` take a JSON body or a multipart upload at the same URL. FastAPI
derives a request body's schema from one parameter of one content type, so these routes read
their body here (``read_body``, by content type), and ``request_body`` writes their OpenAPI
``requestBody`` from the JSON model and the upload's form model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from starlette.datastructures import UploadFile

from ..search.filters import MAX_LABEL, InvalidInput, parse_label
from ..search.index import MAX_ID

MAX_SOURCE = 1000  # characters in an item's source
Number = Annotated[float, Field(strict=True)]  # numbers: no true, no "1"


class VectorQuery(BaseModel):
    """A query (vector, k: /search) or a new item (vector, label, source: /items)."""

    model_config = ConfigDict(extra="forbid")

    vector: list[Number]
    k: int | None = Field(None, strict=True)  # default: 10, or the service's --max-k when smaller
    id: int | None = Field(None, strict=True, ge=0, le=MAX_ID)  # an add's chosen id (an upsert)
    label: int | None = Field(None, ge=0, le=MAX_LABEL)
    source: str | None = Field(None, max_length=MAX_SOURCE)
    metadata: dict[str, Any] | None = None
    labels: list[Annotated[int, Field(strict=True)]] | None = None
    where: dict[str, Any] | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _check_label(cls, value: Any) -> int | None:
        try:
            return parse_label(value)
        except InvalidInput as error:
            raise PydanticCustomError("label", "{message}", {"message": str(error)}) from None


class BatchQuery(BaseModel):
    """Many query vectors in one request: /search/batch."""

    model_config = ConfigDict(extra="forbid")

    vectors: list[list[Number]]
    k: int | None = Field(None, strict=True)
    labels: list[Annotated[int, Field(strict=True)]] | None = None
    where: dict[str, Any] | None = None


class ImageForm(BaseModel):
    """A multipart upload of an image (/embed)."""

    image: bytes = Field(description="the image file")


class SearchForm(ImageForm):
    """A search by an uploaded image; filters go in the query string:
    ``?labels=1,2&where={"shop":"lyon"}``."""

    k: int | None = None


class ItemForm(ImageForm):
    """A new item from an uploaded image."""

    id: int | None = Field(None, ge=0, le=MAX_ID)
    label: int | None = Field(None, ge=0, le=MAX_LABEL)
    source: str | None = Field(None, max_length=MAX_SOURCE)
    metadata: str | None = Field(None, description="a JSON object")


def request_body(json_model: type[BaseModel] | None, form: type[BaseModel]) -> dict[str, Any]:
    """A route's OpenAPI ``requestBody`` (``openapi_extra``): JSON and/or a multipart upload."""
    content = {"multipart/form-data": {"schema": form.model_json_schema()}}
    if json_model is not None:
        content["application/json"] = {"schema": json_model.model_json_schema()}
    return {"requestBody": {"required": True, "content": content}}


@dataclass(frozen=True)
class Upload:
    """A multipart upload: the image's bytes, its file name (cleaned) and the other fields."""

    image: bytes
    filename: str
    fields: dict[str, str]


async def read_body(request: Request, takes: Sequence[str]) -> VectorQuery | Upload:
    """A JSON VectorQuery, or a multipart Upload with an 'image' file.

    ``takes`` names the fields the route reads besides the vector or image: any other is a 422,
    not silently ignored."""
    route = f"{request.method} {request.url.path}"
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            query = VectorQuery.model_validate_json(await request.body())
        except ValidationError as error:
            raise RequestValidationError(error.errors()) from error
        _refuse_unknown(route, query.model_fields_set - {"vector"}, takes)
        return query
    if content_type == "multipart/form-data":
        form = await request.form()
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("send the image as a multipart file field named 'image'")
        _refuse_unknown(route, set(form.keys()) - {"image"}, takes)
        for key in form:
            if len(form.getlist(key)) > 1:
                raise InvalidInput(f"send one '{key}' field, not {len(form.getlist(key))}")
        fields: dict[str, str] = {}
        for key, value in form.items():
            if key != "image":
                if not isinstance(value, str):
                    raise InvalidInput(f"'{key}' must be a plain form field, not a file")
                fields[key] = value
        return Upload(await upload.read(), upload_name(upload.filename), fields)
    raise HTTPException(
        415, "send JSON ({'vector': [...]}) or multipart/form-data with an 'image' file"
    )


def _refuse_unknown(route: str, given: set[str], takes: Sequence[str]) -> None:
    unknown = sorted(given - set(takes))
    if unknown:
        allowed = ", ".join(takes) or "nothing else"
        raise InvalidInput(f"{route} does not take {', '.join(unknown)} (it takes {allowed})")


def upload_name(filename: str | None) -> str:
    """An upload's file name without folders or '..', for messages and item sources."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(char for char in name if char.isprintable()).strip(". ")
    return name or "upload"


def query_filter(request: Request) -> tuple[list[int | None] | None, Any]:
    """An upload's filter, from the query string: ?labels=1,2&where={"shop":"lyon"}."""
    params = request.query_params
    labels = None
    if "labels" in params:
        try:
            labels = [parse_label(part) for part in params["labels"].split(",") if part.strip()]
        except InvalidInput as error:
            raise InvalidInput(f"labels: {error}") from None
    where = None
    if "where" in params:
        try:
            where = json.loads(params["where"])
        except ValueError:
            raise InvalidInput('where must be a JSON object, e.g. {"shop": "lyon"}') from None
    return labels, where


def form_id(text: str | None) -> int | None:
    """An upload's chosen id: a form field holding a whole number from 0 to MAX_ID."""
    if text is None or text == "":
        return None
    if not re.fullmatch(r"\s*\d{1,16}\s*", text) or int(text) > MAX_ID:
        raise InvalidInput(f"id must be a whole number from 0 to {MAX_ID}, got {text!r}")
    return int(text)


def form_metadata(text: str | None) -> Any:
    """An upload's metadata: a form field holding a JSON object."""
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidInput('metadata must be a JSON object, e.g. {"shop": "lyon"}') from None
