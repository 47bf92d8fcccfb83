"""The photo out of a request: the raw body, or the first file of a multipart form, held in memory.

Nothing here parses HTTP or multipart by hand: Starlette streams the body and python-multipart
(through Starlette's parser) splits the form. What this module adds is the limits: a body larger
than the cap is refused as soon as its declared length or its running count says so, and no
upload ever touches the disk (Starlette's form parser spools a file over 1 MB to a temporary
file; here the spool is as large as the cap, so it stays in memory).
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncGenerator
from pathlib import PurePosixPath, PureWindowsPath

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

DEFAULT_NAME = "upload"  # what an answer's "path" says when the upload carries no file name
MAX_NAME = 100  # characters of a client's file name that are kept


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the upload is larger than the server's limit of {limit / 1e6:g} MB")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) once it is known to exceed `limit` bytes: at once when the
    client declares its length, else as soon as the chunks received pass the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def image_from(request: Request, body: bytes, limit: int) -> tuple[bytes, str]:
    """(image bytes, the name to show) from a body already read: a multipart form's first file
    (the field `image` if there is one), or the body itself for any other content type."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return body, DEFAULT_NAME
    parser = _InMemoryParser(request.headers, _once(body), max_files=4, max_fields=16, max_part_size=limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"cannot read the multipart form ({exc.message})") from None
    files = [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]
    try:
        if not files:
            raise HTTPException(400, "the multipart form has no file; send the photo as a file field named image")
        _, upload = next((item for item in files if item[0] == "image"), files[0])
        return await upload.read(), safe_name(upload.filename)
    finally:
        await form.close()


def safe_name(filename: str | None) -> str:
    """A client's file name as an answer's "path": its last component only, without control or
    formatting characters, at most MAX_NAME characters. It names the upload in answers and
    errors and is the stem --save-input writes under, so it may not reach outside that folder."""
    if not filename:
        return DEFAULT_NAME
    base = PureWindowsPath(PurePosixPath(filename).name).name  # a Windows browser may send C:\\...\\x.jpg
    shown = "".join(c for c in base if unicodedata.category(c)[0] != "C")[:MAX_NAME].strip()
    return shown if shown not in ("", ".", "..") else DEFAULT_NAME


class _InMemoryParser(MultiPartParser):
    spool_max_size = 1 << 62  # never rolled over to a temporary file: read_body has capped the size already


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body
