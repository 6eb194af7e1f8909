"""The base class of python-script actions, with the attributes StackStorm gives them."""

from st2common.log import LazyLogger

__all__ = ["Action"]


class Action(object):
    """Subclass it and implement run(**parameters).

    run() returns the result, or a (succeeded, result) tuple to set the execution's status.
    """

    description = None

    def __init__(self, config=None, action_service=None):
        self.config = config or {}
        self.action_service = action_service
        self.logger = LazyLogger("actions.python." + type(self).__name__)

    def run(self, **kwargs):
        raise NotImplementedError("the action class must implement run()")
