from st2client.models.core import Resource
from st2client.models.keyvalue import KeyValuePair

__all__ = ["Resource", "KeyValuePair"]
