"""The `dagbroker` command line. `client` needs only the stdlib; `server` pulls in the broker."""
