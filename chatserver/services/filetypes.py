"""What a file really is, decided from its first bytes (magic numbers), never from the name or the
type the client declared: an "image" is served inline only when its bytes are an image.

Only the types listed in KNOWN_TYPES can ever be accepted: HTML, SVG and XML are absent on
purpose (a browser would run their scripts, even from a download link opened in a tab).
"""

from __future__ import annotations

from dataclasses import dataclass

# Bytes of a file read before deciding what it is: every signature below fits.
SNIFF_BYTES = 4096

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."
# ZIP containers (PK\x03\x04): the office formats they hold are told apart by extension; the
# bytes still have to be a ZIP.
_ZIP_BY_EXTENSION = {
    "docx": _OOXML + "wordprocessingml.document",
    "xlsx": _OOXML + "spreadsheetml.sheet",
    "pptx": _OOXML + "presentationml.presentation",
    "odt": _ODF + "text",
    "ods": _ODF + "spreadsheet",
    "odp": _ODF + "presentation",
    "zip": "application/zip",
}
# OLE compound files (legacy Office): likewise.
_OLE_BY_EXTENSION = {
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
}
_TEXT_BY_EXTENSION = {"txt": "text/plain", "log": "text/plain", "md": "text/plain", "csv": "text/csv"}
_IMAGE_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "webp", "bmp", "svg", "ico", "heic", "avif", "tif", "tiff"}

KNOWN_TYPES = frozenset(
    [
        *IMAGE_TYPES,
        "application/pdf",
        *_ZIP_BY_EXTENSION.values(),
        *_OLE_BY_EXTENSION.values(),
        *_TEXT_BY_EXTENSION.values(),
    ]
)


@dataclass(frozen=True)
class Sniffed:
    """The type a file's bytes show, or why none could be told (`content_type` None)."""

    content_type: str | None
    problem: str = ""

    @property
    def is_image(self) -> bool:
        return self.content_type in IMAGE_TYPES


def _extension(filename: str) -> str:
    _, dot, ext = filename.rpartition(".")
    return ext.lower() if dot else ""


def _image_type(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _looks_like_text(head: bytes, complete: bool) -> bool:
    """UTF-8 without NUL bytes, and not markup a browser might render."""
    if b"\x00" in head:
        return False
    sample = head
    if not complete:
        # The sample may end inside a multi-byte character: drop up to 3 trailing bytes.
        for cut in range(4):
            try:
                text = sample[: len(sample) - cut].decode("utf-8")
                break
            except UnicodeDecodeError:
                continue
        else:
            return False
    else:
        try:
            text = sample.decode("utf-8")
        except UnicodeDecodeError:
            return False
    start = text.lstrip("\ufeff \t\r\n").lower()
    return not start.startswith(("<!doctype", "<html", "<svg", "<?xml", "<script", "<head", "<body", "<iframe"))


def sniff(head: bytes, filename: str, declared_type: str | None, *, complete: bool) -> Sniffed:
    """What the file starting with `head` is. `complete` says `head` is the whole file.

    A file that claims to be an image (by its name or its declared type) must be one by its
    bytes; any other file gets the type its bytes show, with the extension deciding only
    between formats that share one container (ZIP, OLE) and for plain text."""
    ext = _extension(filename)
    declared = (declared_type or "").split(";", 1)[0].strip().lower()
    image = _image_type(head)
    if image is not None:
        return Sniffed(image)
    if ext in _IMAGE_EXTENSIONS or declared.startswith("image/"):
        return Sniffed(None, "This file is not an image its content can confirm (PNG, JPEG, GIF or WebP)")
    if head.startswith(b"%PDF-"):
        return Sniffed("application/pdf")
    if head.startswith(b"PK\x03\x04"):
        kind = _ZIP_BY_EXTENSION.get(ext)
        return Sniffed(kind) if kind else Sniffed(None, "ZIP archives are accepted only as office documents")
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        kind = _OLE_BY_EXTENSION.get(ext)
        return Sniffed(kind) if kind else Sniffed(None, "This kind of file is not accepted")
    text_type = _TEXT_BY_EXTENSION.get(ext)
    if text_type is not None:
        if head and _looks_like_text(head, complete):
            return Sniffed(text_type)
        return Sniffed(None, "This file's content is not plain text")
    return Sniffed(None, "This kind of file is not accepted")
