"""Commands the simulation package adds to `busgen-server` and `busgen-site`."""
