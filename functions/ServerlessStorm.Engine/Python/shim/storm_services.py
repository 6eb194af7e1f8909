"""action_service and sensor_service: what StackStorm gives pack code to reach the datastore and dispatch triggers."""

from st2common.services.datastore import DatastoreService


class _ActionWrapper(object):
    """What pack code reads of StackStorm's action wrapper through action_service (the pack, the class)."""

    def __init__(self, class_name):
        import os

        self._pack = os.environ.get("ST2_ACTION_PACK_NAME")
        self._class_name = class_name


class ActionService(DatastoreService):
    """self.action_service of a python-script action."""

    def __init__(self, host, class_name):
        super(ActionService, self).__init__(host, class_name, "actions.python." + class_name)
        self._action_wrapper = _ActionWrapper(class_name)

    @property
    def datastore_service(self):
        return self


class SensorService(DatastoreService):
    """self.sensor_service of a sensor."""

    def __init__(self, host, class_name):
        super(SensorService, self).__init__(host, class_name, "sensors." + class_name)

    @property
    def datastore_service(self):
        return self

    def get_logger(self, name):
        from st2common.log import getLogger

        return getLogger(name)

    def dispatch(self, trigger, payload=None, trace_tag=None):
        """Dispatches a trigger instance; a payload its trigger type refuses is logged and dropped, as StackStorm does."""
        return self._host.dispatch(trigger, payload, trace_tag)

    def dispatch_with_context(self, trigger, payload=None, trace_context=None):
        if isinstance(trace_context, dict):
            tag = trace_context.get("trace_tag")
        else:
            tag = getattr(trace_context, "trace_tag", None)
        return self._host.dispatch(trigger, payload, tag)
