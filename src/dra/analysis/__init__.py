"""Looking inside trained models (paper Figure 4); apart from the protocols that produce results."""
