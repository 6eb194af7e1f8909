"""The datastore methods of action_service and sensor_service, answered by the ServerlessStorm host.

Names are local to the pack and class (pack.Class:name) unless local=False; only the system scope is offered.
"""

SYSTEM_SCOPE = "system"

__all__ = ["DatastoreService", "KeyValuePair", "SYSTEM_SCOPE", "current_service"]

_current = []


def current_service():
    """The running action's or sensor's datastore service (what st2client's keys go through), or None."""
    return _current[-1] if _current else None


class KeyValuePair(object):
    """One datastore item as list_values returns it."""

    def __init__(self, name, value, secret=False, scope=SYSTEM_SCOPE):
        self.id = name
        self.name = name
        self.value = value
        self.secret = secret
        self.scope = scope

    def __repr__(self):
        return "<KeyValuePair name=%s,value=%s>" % (self.name, "********" if self.secret else self.value)


class DatastoreService(object):
    def __init__(self, host, class_name, logger_name):
        self._host = host
        self._class_name = class_name
        self._logger_name = logger_name
        _current.append(self)

    def _call(self, call):
        return self._host.datastore(call, self._class_name)

    def _log_failure(self, what, name, error):
        from st2common.log import getLogger

        getLogger(self._logger_name).warning("Exception %s datastore (name=%s): %s", what, name, error)

    @staticmethod
    def _check_scope(scope):
        if scope != SYSTEM_SCOPE:
            raise ValueError("Scope %s is unsupported." % scope)

    def list_values(self, local=True, prefix=None, limit=None, offset=0):
        pairs = self._call({"operation": "list", "local": bool(local), "prefix": prefix})
        pairs = pairs[offset or 0:]
        if limit:
            pairs = pairs[:limit]
        return [KeyValuePair(p.get("name"), p.get("value"), p.get("secret", False), p.get("scope", SYSTEM_SCOPE)) for p in pairs]

    def get_value(self, name, local=True, scope=SYSTEM_SCOPE, decrypt=False):
        self._check_scope(scope)
        try:
            return self._call({"operation": "get", "name": name, "local": bool(local), "scope": scope, "decrypt": bool(decrypt)})
        except Exception as e:
            # StackStorm returns None when the lookup fails, logging why.
            self._log_failure("retrieving value from", name, e)
            return None

    def set_value(self, name, value, ttl=None, local=True, scope=SYSTEM_SCOPE, encrypt=False):
        self._check_scope(scope)
        call = {"operation": "set", "name": name, "value": str(value), "local": bool(local), "scope": scope, "encrypt": bool(encrypt)}
        if ttl:
            call["ttl"] = int(ttl)
        self._call(call)
        return True

    def delete_value(self, name, local=True, scope=SYSTEM_SCOPE):
        self._check_scope(scope)
        try:
            return bool(self._call({"operation": "delete", "name": name, "local": bool(local), "scope": scope}))
        except Exception as e:
            self._log_failure("deleting value from", name, e)
            return False
