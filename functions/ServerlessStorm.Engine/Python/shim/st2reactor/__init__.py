"""ServerlessStorm's stand-in for StackStorm's sensor base classes."""
