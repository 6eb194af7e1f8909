"""st2common.runners.utils: the logger StackStorm gives python-script actions that ask for one by name."""

import logging as _logging

from st2common.log import getLogger

__all__ = ["get_logger_for_python_runner_action"]

_LOGGERS = {}


def get_logger_for_python_runner_action(action_name, log_level="debug"):
    """A logger named actions.python.<action_name>, its records at log_level and above on stderr."""
    name = "actions.python.%s" % action_name
    logger = _LOGGERS.get(name)
    if logger is None:
        level = getattr(_logging, str(log_level).upper(), _logging.DEBUG)
        logger = getLogger(name)
        console = _logging.StreamHandler()
        console.setLevel(level)
        console.setFormatter(_logging.Formatter("%(name)-12s: %(levelname)-8s %(message)s"))
        logger.addHandler(console)
        logger.setLevel(level)
        _LOGGERS[name] = logger
    return logger
