"""Real local peers (SLURM, sshd) for the executor tests: scripts and pytest fixtures."""
