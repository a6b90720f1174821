"""Users and tokens: random tokens shown once, stored as hashes, compared in constant time."""
