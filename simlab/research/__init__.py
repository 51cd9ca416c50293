"""The research loop: call journals and forks (replay a run's first steps, then diverge),
interventions declared in config, interviews of stored agents."""
