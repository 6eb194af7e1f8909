"""ISO 8601 times as StackStorm's st2common.util.isotime has them: format, validate, parse.

Written on the standard library (StackStorm's uses dateutil): times without a zone are taken as UTC, and parse
returns an aware datetime in UTC unless asked to keep the original zone.
"""

import datetime
import re

__all__ = ["format", "validate", "parse"]

ISO8601_FORMAT = "%Y-%m-%dT%H:%M:%S"
ISO8601_FORMAT_MICROSECOND = "%Y-%m-%dT%H:%M:%S.%f"
# A UTC time as StackStorm accepts it: 'T' or a space, optional fraction, Z or a zero offset.
ISO8601_UTC_REGEX = r"^\d{4}\-\d{2}\-\d{2}(\s|T)\d{2}:\d{2}:\d{2}(\.\d{3,6})?(Z|\+00|\+0000|\+00:00)$"


def format(dt, usec=True, offset=True):
    """The time as ISO 8601 text; dt may be a datetime, ISO 8601 text, or seconds since the epoch."""
    if isinstance(dt, str):
        dt = parse(dt)
    elif isinstance(dt, int):
        dt = datetime.datetime.fromtimestamp(dt, datetime.timezone.utc)
    text = dt.strftime(ISO8601_FORMAT_MICROSECOND if usec else ISO8601_FORMAT)
    if offset:
        zone = dt.strftime("%z")
        return text + ((zone[:3] + ":" + zone[3:]) if zone else "+00:00")
    name = dt.tzinfo.tzname(dt) if dt.tzinfo else "UTC"
    return text + ("Z" if name == "UTC" else name)


def validate(value, raise_exception=True):
    if isinstance(value, datetime.datetime) or (isinstance(value, str) and re.match(ISO8601_UTC_REGEX, value)):
        return True
    if raise_exception:
        raise ValueError("Datetime value does not match expected format.")
    return False


def parse(value, preserve_original_tz=False, validate_value=True):
    """An aware datetime from ISO 8601 text (in UTC unless preserve_original_tz)."""
    if validate_value:
        validate(value, raise_exception=True)
    if isinstance(value, datetime.datetime):
        dt = value
    else:
        text = value.strip()
        # Python before 3.11 reads neither 'Z' nor a bare '+00'.
        text = re.sub(r"Z$", "+00:00", text)
        text = re.sub(r"([+-]\d{2})$", r"\1:00", text)
        text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
        dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt if preserve_original_tz else dt.astimezone(datetime.timezone.utc)
