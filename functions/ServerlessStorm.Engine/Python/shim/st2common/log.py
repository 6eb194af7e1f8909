"""Loggers for pack code: st2common.log.getLogger as StackStorm's, and the lazy logger of Action."""

AUDIT = 100

# Set by the ServerlessStorm host program: configures where log records go, once, when the first logger is made.
_setup = None


def getLogger(name):
    import logging

    global _setup
    if _setup is not None:
        setup, _setup = _setup, None
        logging.addLevelName(AUDIT, "AUDIT")
        setup(logging)
    return logging.getLogger(name)


get_logger = getLogger


class LazyLogger(object):
    """A logging.Logger made on first use, so an action that never logs never imports logging."""

    def __init__(self, name):
        self.__dict__["_name"] = name
        self.__dict__["_logger"] = None

    def _real(self):
        logger = self.__dict__["_logger"]
        if logger is None:
            logger = getLogger(self.__dict__["_name"])
            self.__dict__["_logger"] = logger
        return logger

    def __getattr__(self, name):
        return getattr(self._real(), name)

    def __setattr__(self, name, value):
        setattr(self._real(), name, value)

    def audit(self, msg, *args, **kwargs):
        self._real().log(AUDIT, msg, *args, **kwargs)
