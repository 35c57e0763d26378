"""Code that runs inside cluster jobs (Slurm/PCS ranks, Ray drivers) rather than in Lambda: job-environment
probes and the log hand-off."""
