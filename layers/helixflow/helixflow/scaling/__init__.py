"""Elasticity: the metrics the clusters and the pipeline publish, and the policy that moves cluster capacity."""
