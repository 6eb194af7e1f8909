"""A datastore item as StackStorm's API client has it."""

from st2client.models.core import Resource

__all__ = ["KeyValuePair"]


class KeyValuePair(Resource):
    def __init__(self, *args, **kwargs):
        self.name = None
        self.value = None
        self.secret = False
        self.ttl = None
        self.scope = "system"
        super(KeyValuePair, self).__init__(*args, **kwargs)

    @property
    def id(self):
        return self.name

    def __repr__(self):
        return "<KeyValuePair name=%s,value=%s>" % (self.name, "********" if self.secret else self.value)
