"""A JSON parser that cannot be driven into a 500."""

from __future__ import annotations

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class OrjsonParser(JSONParser):
    """Parse request bodies with orjson.

    DRF's parser lets ``RecursionError`` from deeply nested input escape as a
    500; orjson caps nesting depth and refuses lone surrogates, raising
    ``ValueError`` for both.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return orjson.loads(stream.read() if stream is not None else b"")
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
