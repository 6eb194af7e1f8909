"""ServerlessStorm's stand-in for StackStorm's API client: only its datastore keys, which pack code uses most."""
