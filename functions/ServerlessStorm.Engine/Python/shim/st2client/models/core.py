"""A resource of the API client: its fields given as keyword arguments, read as attributes."""


class Resource(object):
    def __init__(self, *args, **kwargs):
        for name, value in kwargs.items():
            setattr(self, name, value)

    def to_dict(self, exclude_attributes=None):
        exclude = set(exclude_attributes or [])
        return {k: v for k, v in vars(self).items() if k not in exclude}

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.to_dict())
