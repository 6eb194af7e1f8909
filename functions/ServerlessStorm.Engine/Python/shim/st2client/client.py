"""st2client.client.Client with its datastore keys (client.keys), through the running action's or sensor's own
datastore access: global names in the system scope, as the API client reaches them. The rest of StackStorm's API
(executions, rules, packs, ...) is not here: reaching for it raises, saying so.
"""

from st2client.models.keyvalue import KeyValuePair

__all__ = ["Client"]

_ONLY_KEYS = ("the ServerlessStorm stand-in for st2client has only client.keys (the datastore); "
              "'%s' needs StackStorm's API, which ServerlessStorm does not offer to pack code")


class KeyValuePairManager(object):
    def __init__(self, service):
        self._service = service

    def _datastore(self):
        if self._service is None:
            raise RuntimeError("st2client's keys are reached from a running action or sensor only")
        return self._service

    @staticmethod
    def _system(scope):
        if scope not in (None, "system", "st2kv.system"):
            raise ValueError("Scope %s is unsupported." % scope)

    def get_by_name(self, name, decrypt=False, scope="system", **kwargs):
        self._system(scope)
        value = self._datastore().get_value(name, local=False, decrypt=decrypt)
        return None if value is None else KeyValuePair(name=name, value=value, scope="system")

    def get_by_id(self, id, **kwargs):
        return self.get_by_name(id, **kwargs)

    def get_all(self, prefix=None, limit=None, **kwargs):
        self._system(kwargs.get("scope"))
        return [KeyValuePair(name=p.name, value=p.value, secret=p.secret, scope="system")
                for p in self._datastore().list_values(local=False, prefix=prefix, limit=limit)]

    def query(self, **kwargs):
        return self.get_all(**kwargs)

    def update(self, instance, **kwargs):
        self._system(getattr(instance, "scope", None))
        self._datastore().set_value(instance.name, instance.value, ttl=getattr(instance, "ttl", None), local=False,
                                    encrypt=bool(getattr(instance, "secret", False)))
        return instance

    create = update

    def delete(self, instance, **kwargs):
        self._system(getattr(instance, "scope", None))
        return self._datastore().delete_value(instance.name, local=False)

    def delete_by_id(self, instance_id, **kwargs):
        return self._datastore().delete_value(instance_id, local=False)


class Client(object):
    """Made as StackStorm's (base_url, api_url, token, api_key, ...); those settings are not needed here."""

    def __init__(self, base_url=None, auth_url=None, api_url=None, stream_url=None, api_version=None, cacert=None,
                 debug=False, token=None, api_key=None, **kwargs):
        from st2common.services.datastore import current_service

        self.keys = KeyValuePairManager(current_service())

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotImplementedError(_ONLY_KEYS % name)
