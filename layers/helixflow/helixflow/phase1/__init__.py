"""helixflow.phase1"""
